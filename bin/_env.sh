# shellcheck shell=bash
# Sourced by bin/demo and bin/test: create or reuse the project virtualenv (.venv at the repository
# root), install seisgrid into it when pyproject.toml changed since the last install, and activate it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/_env.sh" || exit 1
#
# torch is installed first and pinned (torch==2.13.0 is a local CPU wheel; any other torch would pull
# gigabytes of CUDA packages). Output is quiet; when a step fails its pip log is shown and the source
# returns non-zero. To force a reinstall, delete .venv/.seisgrid-stamp (or the whole .venv).
# Does not change the caller's shell options (no set -e here).

_seisgrid_env() {
    local root venv python stamp constraints log want have lock
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    venv="$root/.venv"
    python=python3
    stamp="$venv/.seisgrid-stamp"
    constraints="$venv/.seisgrid-constraints.txt"
    log="$venv/.seisgrid-install.log"

    if ! command -v "$python" >/dev/null 2>&1; then
        echo "seisgrid: $python not found; install Python >= 3.11" >&2
        return 1
    fi

    # A venv whose interpreter no longer runs (Python upgraded or removed, folder copied) is rebuilt.
    if [ -e "$venv" ] && ! "$venv/bin/python" -c "" >/dev/null 2>&1; then
        echo "seisgrid: $venv is broken; recreating it" >&2
        rm -rf "$venv"
    fi
    if [ ! -x "$venv/bin/python" ]; then
        echo "seisgrid: creating $venv" >&2
        if ! "$python" -m venv "$venv" >/dev/null 2>"$root/.venv-create.log"; then
            # No ensurepip (Debian without python3-venv): a venv without pip, then pip from outside.
            rm -rf "$venv"
            if ! "$python" -m venv --without-pip "$venv" >>"$root/.venv-create.log" 2>&1 ||
                ! "$python" -m pip --python "$venv/bin/python" install -q pip >>"$root/.venv-create.log" 2>&1; then
                cat "$root/.venv-create.log" >&2
                echo "seisgrid: could not create $venv (see above); install python3-venv or virtualenv" >&2
                rm -f "$root/.venv-create.log"
                return 1
            fi
        fi
        rm -f "$root/.venv-create.log"
    fi

    # What the installed environment must match: the dependency list, the interpreter, the checkout path
    # (editable install) and the torch pin.
    want="$({ cat "$root/pyproject.toml"; "$venv/bin/python" -c 'import sys; print(sys.version)'; \
        echo "$root"; echo "torch==2.13.0"; } | sha256sum | cut -d' ' -f1)" || return 1
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [ "$want" != "$have" ] || [ ! -x "$venv/bin/seisgrid" ]; then
        # One installer at a time (bin/demo and bin/test started together on a fresh checkout).
        if command -v flock >/dev/null 2>&1; then
            exec {lock}>"$venv/.seisgrid-lock"
            flock "$lock"
            have="$(cat "$stamp" 2>/dev/null || true)"
        fi
        if [ "$want" != "$have" ] || [ ! -x "$venv/bin/seisgrid" ]; then
            echo "seisgrid: installing into $venv (first run or pyproject.toml changed; a few minutes)" >&2
            echo "torch==2.13.0" >"$constraints"
            rm -f "$stamp"
            if ! {
                PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q "torch==2.13.0" &&
                    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONSTRAINT="$constraints" \
                        "$venv/bin/python" -m pip install -q -e "$root[dev,cloud,hpc,peers,icechunk]"
            } >"$log" 2>&1; then
                tail -n 60 "$log" >&2
                echo "seisgrid: installation failed (full log: $log)" >&2
                [ -n "${lock:-}" ] && exec {lock}>&-
                return 1
            fi
            echo "$want" >"$stamp"
        fi
        [ -n "${lock:-}" ] && exec {lock}>&-
    fi

    export VIRTUAL_ENV="$venv"
    case ":$PATH:" in
        *":$venv/bin:"*) ;;
        *) export PATH="$venv/bin:$PATH" ;;
    esac
    # Any later pip in this environment keeps the torch pin too.
    [ -f "$constraints" ] && export PIP_CONSTRAINT="$constraints"
    hash -r 2>/dev/null
    return 0
}

_seisgrid_env
_seisgrid_env_rc=$?
unset -f _seisgrid_env
if [ "$_seisgrid_env_rc" -ne 0 ]; then
    unset _seisgrid_env_rc
    return 1 2>/dev/null || exit 1
fi
unset _seisgrid_env_rc
