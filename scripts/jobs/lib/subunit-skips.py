"""Lists the skipped tests of a subunit v2 stream (stdin): one "test id: reason" per line.

Reviewers look for tests that silently stopped running; the reason is the skip message.
Needs python-subunit and testtools (Debian python3-subunit), which ship with os-testr/stestr.
"""

import sys

import subunit
import testtools


def main():
    skipped = []

    def on_test(test):
        if test["status"] != "skip" or not test["id"]:
            return
        reason = test["details"].get("reason")
        text = " ".join(reason.as_text().split()) if reason is not None else ""
        skipped.append((test["id"], text))

    stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    stream.run(result)
    result.stopTestRun()
    for test_id, reason in sorted(skipped):
        print(f"{test_id}: {reason}" if reason else test_id)


if __name__ == "__main__":
    main()
