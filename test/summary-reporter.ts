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
    // Returns the failures found inside `task`; a suite or file that failed with none inside (a failed
    // beforeAll, a file that did not load) counts as one failure itself.
    const visit = (task: Task): number => {
      if (task.type === 'test') {
        const state = task.result?.state;
        if (state === 'pass') passed += 1;
        else if (state === 'fail') failed += 1;
        else skipped += 1;
        return state === 'fail' ? 1 : 0;
      }
      let inside = 0;
      for (const child of task.tasks ?? []) inside += visit(child);
      if (task.result?.state === 'fail' && inside === 0) {
        failed += 1;
        return 1;
      }
      return inside;
    };
    for (const file of files) visit(file);
    process.stdout.write(
      `\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`,
    );
  }
}
