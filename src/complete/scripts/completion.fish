# fish completion for @BIN@, printed by `@BIN@ completion fish`: save it as
# ~/.config/fish/completions/@BIN@.fish.
#
# The candidates come from the program itself: `@BIN@ __complete WORDS...` prints one
# candidate a line (`value<TAB>description`) and a last line `:N` (the protocol kubectl uses for
# plugins; N says whether file names may be offered). So the flags are always those of the
# installed version, and pool names, versions and kube contexts are read from the cluster named
# on the line.
function @FUNC@
    set -l words (commandline -opc)
    set -l current (commandline -ct)
    set -l lines ($words[1] __complete $words[2..-1] "$current" 2>/dev/null)
    set -l directive 0
    if string match -qr '^:[0-9]+$' -- "$lines[-1]"
        set directive (string sub -s 2 -- $lines[-1])
        set -e lines[-1]
    end
    if set -q lines[1]
        printf '%s\n' $lines
    else if test (math "bitand($directive, 4)") -eq 0
        __fish_complete_path "$current"
    end
end

complete -c @BIN@ -f -k -a '(@FUNC@)'
