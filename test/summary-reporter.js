// Prints jest's totals as one plain closing line ("N passed, N failed, N skipped") that CI
// systems reading only the last lines of a run can count, whatever the runner. It is written at
// process exit so it comes after jest's own summary.
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests: passed, numFailedTests: failed, numPendingTests: skipped, numTodoTests: todo } = results;
    process.once('exit', () => {
      process.stderr.write(`\njest: ${passed} passed, ${failed} failed, ${skipped + todo} skipped\n`);
    });
  }
}
module.exports = SummaryReporter;
