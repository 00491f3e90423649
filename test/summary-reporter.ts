// Prints one plain closing line, "N passed, N failed", after the run: the form CI tooling reads in any language.
import type { Reporter } from 'vitest/node';

interface Task {
  readonly type: string;
  readonly mode: string;
  readonly result?: { readonly state?: string };
  readonly tasks?: readonly Task[];
}

export default class SummaryReporter implements Reporter {
  // onFinished runs after the default reporter's summary, so this line closes the output.
  onFinished(files: readonly Task[] = [], errors: readonly unknown[] = []): void {
    let passed = 0;
    let failed = errors.length;
    let skipped = 0;
    const visit = (task: Task): void => {
      if (task.type === 'test') {
        const state = task.result?.state;
        if (state === 'pass') passed += 1;
        else if (state === 'fail') failed += 1;
        else skipped += 1;
      }
      for (const child of task.tasks ?? []) visit(child);
    };
    for (const file of files) {
      // A file that failed to load has no tests but must count as a failure.
      if (file.result?.state === 'fail' && (file.tasks?.length ?? 0) === 0) failed += 1;
      visit(file);
    }
    process.stdout.write(
      `\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`,
    );
  }
}
