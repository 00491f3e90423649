// Entry point of the `starling` command: parses arguments, runs, and sets the exit status.
import { main } from './cli.ts';

const status = await main(process.argv.slice(2));
// -1: a server is running and exits on a signal.
if (status >= 0) process.exitCode = status;
