# Sourced by bin/pa and bin/pa-tornado: sets JAVA_HOME to a JDK >= 25 found without the user's help,
# or stops with one line saying that none exists.
java_major() { # the feature version of the JDK at $1, or nothing
  local rel="$1/release"
  if [[ -f "$rel" ]]; then
    sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$rel"
  elif [[ -x "$1/bin/java" ]]; then
    "$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p'
  fi
}

find_jdk() {
  local best="" bestv=0 cand v
  local cands=()
  [[ -n "${JAVA_HOME:-}" ]] && cands+=("$JAVA_HOME")
  if command -v java >/dev/null 2>&1; then
    cands+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
  fi
  for cand in /usr/lib/jvm/* /opt/java/* /opt/jdk*; do [[ -d "$cand" ]] && cands+=("$cand"); done
  for cand in "${cands[@]}"; do
    [[ -x "$cand/bin/java" ]] || continue
    v="$(java_major "$cand")"
    if [[ -n "$v" && "$v" -ge 25 && "$v" -gt "$bestv" ]]; then best="$cand"; bestv="$v"; fi
  done
  [[ -n "$best" ]] && echo "$best"
}

JDK="$(find_jdk || true)"
if [[ -z "$JDK" ]]; then
  echo "paged-attention needs a JDK >= 25 and found none (looked at JAVA_HOME, java on PATH, /usr/lib/jvm/*); install one, e.g. Temurin 25." >&2
  exit 1
fi
export JAVA_HOME="$JDK"
