#!/usr/bin/env bash
# Installs the Debian packages local development and the tests need, if missing:
# redis-server, a Java 17+ runtime, Maven, make, and Python's venv module.
# As root it runs apt-get; otherwise it prints the command to run and carries on
# (the first command that needs a missing program says so again).
set -euo pipefail

java_major() {
    # `java -version` prints e.g. 'openjdk version "17.0.15"' or 'java version "1.8.0_402"'.
    local version
    version=$(java -version 2>&1 | sed -n 's/.* version "\([0-9][0-9.]*\).*/\1/p' | head -n 1)
    case "$version" in
        1.*) echo "${version#1.}" | cut -d. -f1 ;;
        *) echo "${version%%.*}" ;;
    esac
}

java_package() {
    # Debian releases after bookworm no longer ship Java 17; take their default.
    if apt-cache show openjdk-17-jre-headless >/dev/null 2>&1; then
        echo openjdk-17-jre-headless
    else
        echo default-jre-headless
    fi
}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v mvn >/dev/null || missing+=(maven)
command -v make >/dev/null || missing+=(make)
if ! command -v python3 >/dev/null; then
    missing+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
fi
major=""
if command -v java >/dev/null; then
    major=$(java_major)
fi
need_java=false
if [[ ! "$major" =~ ^[0-9]+$ ]] || ((major < 17)); then
    need_java=true
fi

if [ ${#missing[@]} -eq 0 ] && [ "$need_java" = false ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    [ "$need_java" = true ] && missing+=(openjdk-17-jre-headless)
    echo "missing system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
[ "$need_java" = true ] && missing+=("$(java_package)")
echo "installing ${missing[*]}"
apt-get install -y -q --no-install-recommends "${missing[@]}"
