#!/bin/sh
# PrairieLearn's external grader entrypoint (externalGradingOptions.entrypoint, or the image's
# default command): grades /grade/student and leaves /grade/results/results.json.
#
# PrairieLearn runs it as root in a container with the job folder mounted at /grade and reads
# results.json only when it exits with status 0. `mpgrade export prairielearn-run` always writes
# one (a submission that cannot be graded is "gradable": false); should Python itself not start,
# the fallback below writes a not-gradable result, so the student never sees a 0 for our failure
# and the attempt is not counted. Arguments go to prairielearn-run (--exercise, --timeout, ...).
/opt/mpgrade/bin/python -m grader export prairielearn-run "$@"
status=$?
if [ ! -s /grade/results/results.json ]; then
    mkdir -p /grade/results
    printf '%s\n' '{"gradable": false, "message": "The grader could not start; this attempt was not counted. Please tell course staff.", "format_errors": ["the grader could not start (exit status '"$status"')"], "tests": []}' > /grade/results/results.json
fi
exit 0
