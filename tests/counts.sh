# tests/counts.sh: sourced by the scripts that run suites and add up their counts
# (tests/run-all.sh, tests/long/*.sh). Every suite ends with a line
# "N passed, M failed" (one word and a colon may stand before it).
#
# count_parse OUTPUT RC: sets count_p and count_f from OUTPUT's last such line.
# A suite that exited non-zero with no failure counted is one failure; a suite
# with no counts line at all is one failure and count_parse returns 1, so the
# caller can show the output's tail.
count_parse() {
    local out=$1 rc=$2 line
    count_p=0
    count_f=0
    line=$(grep -aE '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n 1)
    if [[ -z $line ]]; then
        count_f=1
        return 1
    fi
    line=${line#*: }
    count_p=${line%% passed*}
    line=${line#*passed, }
    count_f=${line%% failed*}
    if [[ $rc -ne 0 && $count_f -eq 0 ]]; then
        count_f=1
    fi
    return 0
}
