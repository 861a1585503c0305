# trainwatch's remote tail. trainwatch sends this text to `sh -s` over ssh on
# the host being watched, after lines that set: the roots (`set -- ROOT...`),
# `interval` (seconds between polls), `once` (1: exit after the first pass),
# `cap` (largest chunk), `rescan` (polls between two searches for new files),
# `batch` (files per stat command),
# and `tw_resume`, the files already read (see tw_state).
#
# It lists the log files under the roots and writes what they append to
# stdout, framed so that any bytes can pass:
#   @@trainwatch hello PROTOCOL HOSTNAME
#   @@trainwatch tail DEV:INODE OFFSET LENGTH MTIME NAME   + LENGTH bytes
#   @@trainwatch doc DEV:INODE SIZE MTIME NAME             + SIZE bytes (whole)
#   @@trainwatch gone NAME | problem ROOT# TEXT | ok ROOT# | synced | beat
# *.json files are documents, sent whole when they change; others are tailed
# from where the last chunk ended (tail -c +OFFSET+1). Metadata files a log
# is read with (Lightning's hparams.yaml) are documents too, listed before
# the logs of their folder so that they arrive first. A poll in which no
# file changed costs one stat and one sleep. Nothing is written on this host;
# only sh, find, stat, tail, head, cat and sleep are needed.

# A write that fails means trainwatch is gone (even where SIGPIPE is ignored): stop.
tw_emit() { printf '@@trainwatch %s\n' "$*" || exit 0; }

if stat -L -c %s / >/dev/null 2>&1; then
    tw_stat() { stat -L -c '%d:%i %s %Y %n' "$@" 2>/dev/null; }
elif stat -L -f %z / >/dev/null 2>&1; then
    tw_stat() { stat -L -f '%d:%i %z %m %N' "$@" 2>/dev/null; }
else
    tw_emit "fatal no usable stat command on $(uname -n)"
    exit 3
fi

# Bytes [$2, $2 + $3) of file $1 counting from 1; zeros where the file ended
# early (truncated while read), so the frame keeps its announced length.
tw_bytes() { { tail -c "+$2" "$1" 2>/dev/null; cat /dev/zero; } | head -c "$3"; }

N=0
known='
'
# Remember file $1; its offset $2 and identity $3 when resuming.
tw_add() {
    N=$((N + 1))
    case $1 in
        *.[jJ][sS][oO][nN] | @SIDECAR_CASE@) tw_k=d ;;
        *) tw_k=t ;;
    esac
    eval "n_$N=\$1 o_$N=\${2:-0} i_$N=\${3:--} k_$N=\$tw_k s_$N= g_$N=0"
    known="$known$1
"
    # The names quoted for eval, $batch to a stat command (a command line is bounded).
    case $1 in
        *\'*) tw_q="'$(printf '%s' "$1" | sed "s/'/'\\\\''/g")'" ;;
        *) tw_q="'$1'" ;;
    esac
    tw_c=$(((N + batch - 1) / batch))
    eval "a_$tw_c=\"\${a_$tw_c:-} \$tw_q\""
}

# One stat line per file that exists, in the order of the files.
tw_stat_all() {
    tw_c=1
    while [ $((tw_c * batch - batch)) -lt "$N" ]; do
        eval "eval \"tw_stat \$a_$tw_c\""
        tw_c=$((tw_c + 1))
    done
}

# Is $1 a log file name (trainwatch.ingest.discover.is_log_name)?
tw_wanted() {
    tw_b=${1##*/}
    case $tw_b in
        .*) return 1 ;;
        *.tfevents.*) return 0 ;;
        *.*) tw_e=${tw_b##*.} ;;
        *) return 0 ;;
    esac
    case $tw_e in
        '') return 1 ;;
        *[!0-9]*) ;;
        *) return 0 ;;
    esac
    case .$tw_e in
        @KNOWN@) return 0 ;;
    esac
    return 1
}

# Is $1 a metadata file read with a log (ParserSpec.sidecar_suffix)?
tw_sidecar() {
    case ${1##*/} in
        @SIDECAR_CASE@) return 0 ;;
    esac
    return 1
}

# The files under . whose names match the find expression "$@", sorted.
tw_find() {
    find . \( -type d \( -name '.?*' -o -name __pycache__ \) -prune \) \
        -o \( -type f -o -type l \) ! -name '.*' \( "$@" \) -print 2>/dev/null | sort
}

# Add the files that appeared under the roots; report roots that are missing.
tw_discover() {
    tw_r=0
    for tw_root in "$@"; do
        tw_r=$((tw_r + 1))
        case $tw_root in
            "~") tw_root=$HOME ;;
            "~/"*) tw_root=$HOME/${tw_root#"~/"} ;;
        esac
        eval "tw_was=\${r_$tw_r:-}"
        if [ -f "$tw_root" ]; then
            # A log named on its own: the sidecars of its folder (not below) first.
            tw_dir=${tw_root%/*}
            tw_list=$(cd "$tw_dir/" 2>/dev/null && find . ! -name . -prune \( -type f -o -type l \) \
                ! -name '.*' \( @SIDECARS@ \) -print 2>/dev/null | sort)
            while IFS= read -r tw_f; do
                [ -n "$tw_f" ] || continue
                tw_f=$tw_dir/${tw_f#./}
                case $known in *"
$tw_f
"*) ;; *) [ -f "$tw_f" ] && tw_add "$tw_f" ;; esac
            done <<TW_LIST
$tw_list
TW_LIST
            case $known in *"
$tw_root
"*) ;; *) tw_add "$tw_root" ;; esac
            tw_now=ok
        elif [ -d "$tw_root" ]; then
            tw_now=ok
            tw_dir=${tw_root%/}
            # Sidecars first: a log's parser is made with its sidecar when it is first read.
            tw_list=$(cd "$tw_root" 2>/dev/null && tw_find @SIDECARS@ && tw_find @FIND@)
            while IFS= read -r tw_f; do
                [ -n "$tw_f" ] || continue
                tw_f=$tw_dir/${tw_f#./}
                case $known in *"
$tw_f
"*) continue ;; esac
                { tw_wanted "$tw_f" || tw_sidecar "$tw_f"; } && [ -f "$tw_f" ] && tw_add "$tw_f"
            done <<TW_LIST
$tw_list
TW_LIST
        elif [ -e "$tw_root" ]; then
            tw_now="not a file or directory"
        else
            tw_now="no such file or directory"
        fi
        if [ "$tw_now" != "$tw_was" ]; then
            eval "r_$tw_r=\$tw_now"
            if [ "$tw_now" = ok ]; then tw_emit "ok $tw_r"; else tw_emit "problem $tw_r $tw_now"; fi
        fi
    done
}

tw_gone() {
    eval "tw_g=\$g_$1"
    if [ "$tw_g" = 0 ]; then
        eval "g_$1=1 s_$1= tw_n=\$n_$1"
        tw_emit "gone $tw_n"
    fi
}

# File #$1 has identity $2, size $3, mtime $4: send what changed.
tw_file() {
    eval "tw_n=\$n_$1"
    # A FIFO or a device put where a log was: tail would block on it (a FIFO
    # stats as size 0, so a document's "whole text" read would wait for ever).
    if [ ! -f "$tw_n" ]; then tw_gone "$1"; return 0; fi
    eval "tw_o=\$o_$1 tw_i=\$i_$1 tw_k=\$k_$1 tw_s=\$s_$1 g_$1=0"
    tw_stamp="$2 $3 $4"
    [ "$tw_stamp" = "$tw_s" ] && return 0
    eval "s_$1=\$tw_stamp"
    if [ "$tw_k" = d ]; then
        tw_emit "doc $2 $3 $4 $tw_n"
        tw_bytes "$tw_n" 1 "$3"
        return 0
    fi
    if [ "$2" != "$tw_i" ] || [ "$3" -lt "$tw_o" ]; then tw_o=0; fi
    while [ "$tw_o" -lt "$3" ]; do
        tw_len=$(($3 - tw_o))
        [ "$tw_len" -gt "$cap" ] && tw_len=$cap
        tw_emit "tail $2 $tw_o $tw_len $4 $tw_n"
        tw_bytes "$tw_n" $((tw_o + 1)) "$tw_len"
        tw_o=$((tw_o + tw_len))
    done
    eval "o_$1=\$tw_o i_$1=\$2"
}

# $1: one stat line per file that still exists, in the order of the files.
tw_sync() {
    tw_j=1
    # The name is last: it keeps its inner spaces (log names never end in one).
    while IFS=' ' read -r tw_id tw_size tw_mt tw_name; do
        [ -n "$tw_name" ] || continue
        while [ "$tw_j" -le "$N" ]; do
            eval "tw_n=\$n_$tw_j"
            [ "$tw_n" = "$tw_name" ] && break
            tw_gone "$tw_j"
            tw_j=$((tw_j + 1))
        done
        [ "$tw_j" -le "$N" ] || break
        tw_file "$tw_j" "$tw_id" "$tw_size" "$tw_mt"
        tw_j=$((tw_j + 1))
    done <<TW_STAT
$1
TW_STAT
    while [ "$tw_j" -le "$N" ]; do
        tw_gone "$tw_j"
        tw_j=$((tw_j + 1))
    done
}

# The files already read, from the lines trainwatch set in tw_resume:
# OFFSET IDENTITY SIZE MTIME NAME (SIZE and MTIME "-" for a tailed file).
tw_state() {
    while IFS=' ' read -r tw_o tw_i tw_sz tw_mt tw_name; do
        [ -n "$tw_name" ] || continue
        tw_add "$tw_name" "$tw_o" "$tw_i"
        [ "$tw_sz" = - ] || eval "s_$N=\"\$tw_i \$tw_sz \$tw_mt\""
    done <<TW_STATE
$tw_resume
TW_STATE
}

tw_main() {
    set -f
    tw_emit "hello 1 $(uname -n 2>/dev/null || echo unknown)"
    tw_state
    tw_polls=0
    tw_prev=
    tw_synced=
    while :; do
        [ $((tw_polls % rescan)) -eq 0 ] && tw_discover "$@"
        tw_polls=$((tw_polls + 1))
        tw_cur=
        [ "$N" -gt 0 ] && tw_cur=$(tw_stat_all)
        if [ "$tw_cur" != "$tw_prev" ]; then
            tw_sync "$tw_cur"
            tw_prev=$tw_cur
        else
            tw_emit beat
        fi
        if [ -z "$tw_synced" ]; then
            tw_emit synced
            tw_synced=1
            [ "$once" = 1 ] && return 0
        fi
        sleep "$interval" 2>/dev/null || sleep 1
    done
}

# Parsed whole before it runs, so its commands cannot read this script as input.
tw_main "$@" </dev/null
