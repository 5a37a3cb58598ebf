#!/usr/bin/env sh
# Debian's chromium for the test that opens `hybridver crosscheck`'s HTML report in a real
# headless browser (tests/soundness/).  Installs it only where it is missing and apt-get
# can run (as root); anywhere else it says so and that one test skips.
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 ||
       { apt-get update -q >/dev/null 2>&1 &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; then
        echo "installed Debian's chromium for the HTML report test"
        exit 0
    fi
fi
echo "chromium is not installed (apt-get install chromium): the HTML report's browser test will skip"
exit 0
