#!/bin/sh
# Installs Debian's chromium for the status page's end-to-end test when it is missing.
# Without root or apt-get, the browser test is skipped with a message saying why.
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser test (once)..."
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
        || echo "warning: could not install chromium; the browser test will be skipped"
else
    echo "note: chromium is not installed and this user cannot apt-get it; the browser test will be skipped"
fi
exit 0
