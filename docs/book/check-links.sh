#!/usr/bin/env bash
# Fails if a relative markdown link `](path)` or `](path#anchor)` in
# docs/book/src/**/*.md points to a file that does not exist, or outside
# docs/book/src (mdbook copies only src/ into the book, so such a link would
# be dead in the HTML). No network: http(s)://, mailto: and pure `#anchor`
# links are skipped, and so are fenced code blocks and inline code spans.
# `{{#include FILE}}` targets must exist too.
#
#   docs/book/check-links.sh        # from anywhere
set -euo pipefail
src=$(cd "$(dirname "$0")/src" && pwd -P)
status=0
checked=0
while IFS= read -r -d '' page; do
    dir=$(dirname "$page")
    # Drop fenced code blocks, then inline code spans; one link per line.
    links=$(sed -e '/^[[:space:]]*```/,/^[[:space:]]*```/d' \
                -e '/^[[:space:]]*~~~/,/^[[:space:]]*~~~/d' "$page" |
        sed -e 's/``[^`]*``//g' -e 's/`[^`]*`//g' |
        grep -o '\](<\?[^)> ]*>\?\( "[^"]*"\)\?)' |
        sed -e 's/^](<\?//' -e 's/>\?\( "[^"]*"\)\?)$//' || true)
    while IFS= read -r link; do
        [ -n "$link" ] || continue
        case $link in
            http://* | https://* | mailto:* | '#'*) continue ;;
            /*) echo "${page#"$src"/}: absolute link ($link): make it relative" >&2
                status=1; continue ;;
        esac
        path=${link%%#*}
        path=${path%%\?*}
        checked=$((checked + 1))
        target="$dir/$path"
        if [ ! -e "$target" ]; then
            echo "${page#"$src"/}: broken link: $link" >&2
            status=1
            continue
        fi
        real=$(cd "$(dirname "$target")" && pwd -P)/$(basename "$target")
        case $real in
            "$src"/*) ;;
            *) echo "${page#"$src"/}: link leaves docs/book/src (not in the built book): $link" >&2
               status=1 ;;
        esac
    done <<<"$links"
    # {{#include FILE}} and the like: mdbook only logs a missing file and
    # goes on, so check them here (FILE may end in :anchor or :from:to).
    includes=$(grep -o '{{#\(include\|rustdoc_include\|playground\) [^} ]*' "$page" |
        sed 's/^{{#[a-z_]* //' || true)
    while IFS= read -r inc; do
        [ -n "$inc" ] || continue
        file=${inc%%:*}
        checked=$((checked + 1))
        if [ ! -f "$dir/$file" ]; then
            echo "${page#"$src"/}: {{#include}} of a missing file: $file" >&2
            status=1
        fi
    done <<<"$includes"
done < <(find "$src" -name '*.md' -print0)
if [ "$status" -eq 0 ]; then
    echo "check-links: $checked relative links and includes in docs/book/src, all present"
fi
exit "$status"
