#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job on its embedded default: install everything, build, then play
# a device's life end to end (scripts/story.sh): three signed releases served
# by nginx over HTTP/2, a file-backed A/B device whose agent installs v2.0,
# reboots into it and marks it good, then installs v3.0, sees its health check
# fail and falls back to v2.0; a report of bytes downloaded, time per step and
# the final boot state.  WORK (default out/story) keeps everything for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec bash scripts/story.sh
