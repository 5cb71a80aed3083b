# bash completion for kubectl-zdupgrade, printed by `kubectl-zdupgrade completion bash`.
#
# The candidates come from the program itself: `kubectl-zdupgrade __complete WORDS...` prints one
# candidate a line and a last line `:N` (the protocol kubectl uses for plugins; N says whether
# file names may be offered). So the flags are always those of the installed version, and pool
# names, versions and kube contexts are read from the cluster named on the line.
_kubectl_zdupgrade() {
    local line=${COMP_LINE:0:COMP_POINT}
    local -a words lines
    read -r -a words <<< "$line"
    # A line that ends in a blank starts a new, empty word.
    if [[ $line == *[[:blank:]] ]]; then
        words+=("")
    fi
    local program=${words[0]/#\~/$HOME}
    local out
    while IFS= read -r out; do
        lines+=("$out")
    done < <("$program" __complete "${words[@]:1}" 2>/dev/null)
    local directive=0 last=$(( ${#lines[@]} - 1 ))
    if (( last >= 0 )) && [[ ${lines[last]} == :* ]]; then
        directive=${lines[last]#:}
        unset "lines[last]"
    fi
    # Readline replaces only what follows the last COMP_WORDBREAKS character of the word (for
    # `--from=po`, `po`): drop the part of each candidate that stays.
    local typed=${words[${#words[@]} - 1]}
    local keep=$(( ${#typed} - ${#2} ))
    (( keep < 0 )) && keep=0
    COMPREPLY=()
    local candidate
    for candidate in "${lines[@]}"; do
        candidate=${candidate%%$'\t'*}
        COMPREPLY+=("${candidate:keep}")
    done
    if (( ${#COMPREPLY[@]} == 0 && (directive & 4) == 0 )); then
        compopt -o default 2>/dev/null
    fi
    if (( directive & 2 )); then
        compopt -o nospace 2>/dev/null
    fi
    if (( directive & 32 )); then
        compopt -o nosort 2>/dev/null
    fi
    return 0
}

complete -F _kubectl_zdupgrade kubectl-zdupgrade
