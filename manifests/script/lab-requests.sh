# ---- request helpers (bash 5 and curl; they stand in for dynamo-lab demo / traffic) ----
# lab_chat URL LABEL BODY: one streamed chat completion. Prints the time to the first token, the
# total time and (when the server reports usage) cached/prompt tokens, then the label. The answer,
# JSON-escaped, is left in $lab_answer for the next turn of a conversation.
lab_chat() {
  local url=$1 label=$2 body=$3 line t0 t1='' t2 prompt='?' cached='?'
  local re_content='[{,]"content":"(([^"\\]|\\.)*)"' re_prompt='"prompt_tokens":([0-9]+)' re_cached='"cached_tokens":([0-9]+)'
  lab_answer=''
  t0=${EPOCHREALTIME/[.,]/}
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    [[ -z $line ]] && continue
    if [[ $line != data:* ]]; then printf '%s\n' "$line" >&2; continue; fi
    [[ $line == 'data: [DONE]' ]] && break
    if [[ $line =~ $re_content && -n ${BASH_REMATCH[1]} ]]; then
      [[ -n $t1 ]] || t1=${EPOCHREALTIME/[.,]/}
      lab_answer+=${BASH_REMATCH[1]}
    fi
    if [[ $line =~ $re_prompt ]]; then prompt=${BASH_REMATCH[1]}; fi
    if [[ $line =~ $re_cached ]]; then cached=${BASH_REMATCH[1]}; fi
  done < <(curl -sS -N --fail-with-body -H 'content-type: application/json' -H 'accept: text/event-stream' \
    ${LAB_API_KEY:+-H "authorization: Bearer $LAB_API_KEY"} --data-binary @- "$url/v1/chat/completions" <<<"$body")
  wait $! || { echo "request failed: $label" >&2; return 1; }
  t2=${EPOCHREALTIME/[.,]/}
  [[ -n $t1 ]] || t1=$t2
  printf 'TTFT %9s ms  total %9s ms  cached/prompt %13s  %s\n' "$(lab_ms $((t1 - t0)))" "$(lab_ms $((t2 - t0)))" "$cached/$prompt" "$label"
}
lab_ms() { printf '%d.%d' $(($1 / 1000)) $(($1 / 100 % 10)); }
# lab_summary FILE: request count, TTFT percentiles and prompt tokens served from cache, over lab_chat lines.
lab_summary() {
  sort -k2,2n "$1" | awk '{ t[NR] = $2; split($8, c, "/"); cached += c[1]; prompt += c[2] }
    function at(p,   i) { i = int(p * NR / 100); if (i < p * NR / 100) i++; return t[i < 1 ? 1 : i] }
    END { if (NR) printf "%d requests  TTFT ms p50 %s  p90 %s  p99 %s  prompt tokens from cache %d/%d\n", NR, at(50), at(90), at(99), cached, prompt }'
}
(( BASH_VERSINFO[0] >= 5 )) || { echo "This script needs bash 5 or newer (it times requests with \$EPOCHREALTIME)." >&2; exit 1; }
