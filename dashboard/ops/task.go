package ops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// Payloads returns the task's data and output as indented JSON, or "" for
// what the task does not have. They come from the library's own JSON form
// of the task, which keeps every digit of large numbers.
func Payloads[S ddbtrack.Status](t *ddbtrack.Task[S]) (data, output string, err error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", "", fmt.Errorf("encode task %q: %w", t.ID, err)
	}
	var rec struct {
		Data   json.RawMessage `json:"data"`
		Output json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return "", "", fmt.Errorf("decode task %q: %w", t.ID, err)
	}
	return indent(rec.Data), indent(rec.Output), nil
}

// indent re-encodes raw JSON for people: indented, with <, > and & as
// themselves rather than the \u003c escapes encoding/json writes by default.
// Pages escape the text for HTML anyway; a terminal needs none.
func indent(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // Keep every digit of large integers.
	var v any
	if err := dec.Decode(&v); err != nil {
		return string(raw)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return string(raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Age rounds a duration to what a person reads at a glance: 42s, 5m,
// 3h20m, 4d.
func Age(d time.Duration) string {
	d = d.Abs()
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
