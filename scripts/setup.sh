#!/usr/bin/env bash
# Sets up a Debian 12/13 machine for crossway: Debian packages (only the missing ones), the test user, npm ci.
# Idempotent and quick when everything is installed. Runs as root, or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  SUDO=(sudo -n env DEBIAN_FRONTEND=noninteractive)
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# Package list: one place (scripts/debian-packages.txt); 'name?' = only where the release has it.
required=()
optional=()
while read -r line; do
  line=${line%%#*}
  line=$(echo "$line" | xargs)
  [ -z "$line" ] && continue
  if [[ $line == *'?' ]]; then optional+=("${line%'?'}"); else required+=("$line"); fi
done < scripts/debian-packages.txt

# Node.js >= 20: Debian 13 ships it (headers for node-gyp in libnode-dev); Debian 12's is 18, so there it must come
# from elsewhere (e.g. NodeSource), which this script does not add behind your back.
node_ok() { command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; }
if ! node_ok; then
  case "$(cat /etc/debian_version 2>/dev/null)" in
    11* | 12*) echo "setup: Node.js >= 20 is required and Debian $(cat /etc/debian_version)'s is older: install it (e.g. from NodeSource) first" >&2; exit 1 ;;
    *) required+=(nodejs npm libnode-dev) ;;
  esac
fi

missing=()
for p in "${required[@]}"; do installed "$p" || missing+=("$p"); done
optional_missing=()
for p in "${optional[@]}"; do installed "$p" || optional_missing+=("$p"); done

if [ ${#missing[@]} -gt 0 ] || [ ${#optional_missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} ${optional_missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  for p in "${optional_missing[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then missing+=("$p"); else echo "setup: $p does not exist on this release, skipped"; fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "setup: all Debian packages present"
fi
node_ok || { echo "setup: Node.js >= 20 is required (found $(node --version 2>/dev/null || echo none))" >&2; exit 1; }

# sway refuses to run as root, so the harness runs it as this unprivileged user.
if ! id wltest >/dev/null 2>&1; then
  echo "setup: creating user wltest"
  "${SUDO[@]}" useradd -m -s /bin/bash wltest
fi

# Build the addon against the installed Node headers when they exist (no download from nodejs.org).
if [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
npm ci --no-audit --no-fund
# The compiled build bin/crossway.js starts from while the sources match its digest (a service start 0.4-0.9 s
# shorter than through tsx; about 5 s to build).
npm run build --silent
