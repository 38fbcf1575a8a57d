#!/usr/bin/env bash
# The git-backed lake (LAKE_STORAGE=git): the lake and its report live on a branch of this repository.
#
#   tools/publish_lake.sh pull DIR         DIR becomes a checkout of the data branch's tip (empty on the first day)
#   tools/publish_lake.sh push DIR DATE    commit DIR on top of that tip, if anything changed, and push it
#
# The scheduler's etl job calls `pull` before the run (so --skip-committed and the report's movement see the
# days already published) and `push` after a successful one. Nothing is ever forced: every push fast-forwards
# the branch by at most one commit, and a run that changed nothing (a catch-up run that skipped, a re-run that
# wrote the same bytes) adds none. Only the tip is fetched (--depth=1): a run needs the files, not the history.
#
# Environment: LAKE_BRANCH (default: data); LAKE_REMOTE (default: this checkout's origin); GITHUB_TOKEN and
# GITHUB_SERVER_URL, when set, authenticate git for this process only (never written to .git/config or argv).
set -euo pipefail

branch="${LAKE_BRANCH:-data}"
bot_name='github-actions[bot]'
bot_email='41898282+github-actions[bot]@users.noreply.github.com'

die() {
    echo "::error::publish_lake: $*"
    exit 1
}

authenticate() {
    if [[ -n "${GITHUB_TOKEN:-}" && -n "${GITHUB_SERVER_URL:-}" ]]; then
        local basic
        basic="$(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 -w0)"
        echo "::add-mask::$basic"
        export GIT_CONFIG_COUNT=1
        export GIT_CONFIG_KEY_0="http.${GITHUB_SERVER_URL}/.extraheader"
        export GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $basic"
    fi
}

pull() {
    local dir="$1" remote status=0
    remote="${LAKE_REMOTE:-$(git remote get-url origin)}"
    [[ ! -e "$dir" || -z "$(ls -A -- "$dir")" ]] || die "$dir exists and is not empty; pull needs a fresh folder"
    git init --quiet -- "$dir"
    git -C "$dir" remote add origin "$remote"
    git -C "$dir" ls-remote --exit-code --heads origin "refs/heads/$branch" >/dev/null || status=$?
    case "$status" in
        0)
            git -C "$dir" fetch --quiet --no-tags --depth=1 origin "refs/heads/$branch"
            git -C "$dir" checkout --quiet -B "$branch" FETCH_HEAD
            echo "pulled $branch at $(git -C "$dir" rev-parse --short HEAD) into $dir"
            ;;
        2)  # no such branch yet: the first day starts it, with no parent
            git -C "$dir" checkout --quiet --orphan "$branch"
            echo "$branch does not exist yet; the first push creates it"
            ;;
        *) die "cannot reach $remote (git ls-remote exited $status)" ;;
    esac
}

push() {
    local dir="$1" day="$2"
    [[ "$day" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || die "DATE must be YYYY-MM-DD, got '$day'"
    git -C "$dir" rev-parse --git-dir >/dev/null 2>&1 || die "$dir is not a checkout made by '$0 pull'"
    git -C "$dir" add --all .
    if git -C "$dir" rev-parse --quiet --verify HEAD >/dev/null; then
        if git -C "$dir" diff --cached --quiet HEAD; then
            echo "nothing changed in $dir; nothing to publish"
            return 0
        fi
    elif [[ -z "$(git -C "$dir" ls-files)" ]]; then
        echo "$dir is empty; nothing to publish"
        return 0
    fi
    git -C "$dir" -c user.name="$bot_name" -c user.email="$bot_email" \
        commit --quiet -m "Lake: TMDB trending for $day"
    git -C "$dir" push --quiet origin "HEAD:refs/heads/$branch"
    echo "published $day to $branch at $(git -C "$dir" rev-parse --short HEAD)"
}

authenticate
case "${1:-}" in
    pull) [[ $# -eq 2 ]] || die "usage: $0 pull DIR"; pull "$2" ;;
    push) [[ $# -eq 3 ]] || die "usage: $0 push DIR DATE"; push "$2" "$3" ;;
    *) die "usage: $0 pull DIR | push DIR DATE" ;;
esac
