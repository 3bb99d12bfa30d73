#!/bin/sh
# The image's entrypoint: a greeting made of what the build put in place.
echo "$GREETING, $1 ($(cat /srv/app/tool.txt), $(cat /srv/payload/data.txt))"
