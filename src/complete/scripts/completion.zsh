#compdef @BIN@
# zsh completion for @BIN@, printed by `@BIN@ completion zsh`: save it as _@BIN@ in a
# directory of $fpath, or source it after compinit.
#
# The candidates come from the program itself: `@BIN@ __complete WORDS...` prints one
# candidate a line (`value<TAB>description`) and a last line `:N` (the protocol kubectl uses for
# plugins; N says whether file names may be offered). So the flags are always those of the
# installed version, and pool names, versions and kube contexts are read from the cluster named
# on the line.
@FUNC@() {
    local -a lines candidates options
    local directive=0 line value
    lines=("${(@f)$(${(Q)words[1]} __complete "${(@Q)words[2,CURRENT-1]}" "${(Q)PREFIX}" 2>/dev/null)}")
    if [[ ${lines[-1]} == :<-> ]]; then
        directive=${lines[-1]#:}
        lines[-1]=()
    fi
    for line in $lines; do
        [[ -n $line ]] || continue
        value=${${line%%$'\t'*}//:/\\:}
        if [[ $line == *$'\t'* ]]; then
            candidates+=("$value:${line#*$'\t'}")
        else
            candidates+=("$value")
        fi
    done
    if (( ${#candidates} )); then
        (( directive & 2 )) && options+=(-S '')
        if (( directive & 32 )); then
            _describe -V -t values value candidates $options
        else
            _describe -t values value candidates $options
        fi
    elif (( ! (directive & 4) )); then
        _files
    fi
}

if [[ $funcstack[1] == @FUNC@ ]]; then
    # Autoloaded from $fpath: this call is the completion itself.
    @FUNC@ "$@"
else
    compdef @FUNC@ @BIN@
fi
