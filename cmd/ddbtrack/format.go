package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ddbtrack/ddbtrack"

	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

// printTable writes rows under a header, in columns two spaces apart.
func printTable(w io.Writer, header []string, rows [][]string) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// tabwriter pads an empty last cell; trailing blanks only get in the
	// way of people copying lines and of diffs.
	for line := range strings.Lines(b.String()) {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " \n")); err != nil {
			return err
		}
	}
	return nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// clean makes text from the table safe to print on a terminal; see
// ops.Visible. Newlines are kept only when keepNewlines is set.
func clean(s string, keepNewlines bool) string { return ops.Visible(s, keepNewlines) }

// pasteID returns a task ID in a form that a shell (bash, zsh, ksh) turns
// back into the ID when it is pasted as an argument, such as into `ddbtrack
// show`: the ID itself when no character needs quoting, in single quotes
// when only printable characters do, and otherwise as $'...', in which
// control characters, bidirectional controls and bytes that are not UTF-8
// are escaped, so the form is also safe to print.
func pasteID(id string) string {
	if id != "" && !strings.ContainsFunc(id, needsQuote) {
		return id
	}
	if ops.IsVisible(id, false) && !strings.Contains(id, "'") {
		return "'" + id + "'"
	}
	var b strings.Builder
	b.WriteString("$'")
	for i, r := range id {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(id[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, id[i])
		case r == '\'' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case !ops.IsVisible(string(r), false) || !unicode.IsPrint(r):
			if r > 0xFFFF {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString("'")
	return b.String()
}

// needsQuote reports whether a shell could read r as something other than
// part of a word.
func needsQuote(r rune) bool {
	return !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_./:@%+=,", r)) || !ops.IsVisible(string(r), false)
}

// cell fits text into one table cell: the first line, cleaned, cut to max
// runes with an ellipsis.
func cell(s string, max int) string {
	line, _, more := strings.Cut(s, "\n")
	line = clean(strings.TrimSpace(line), false)
	if utf8.RuneCountInString(line) > max {
		line = string([]rune(line)[:max-1]) + "…"
	} else if more {
		line += " …"
	}
	return line
}

// formatTime shows a time in UTC, or "-" for the zero time.
func formatTime(t time.Time) string { return ops.FormatTime(t) }

// formatLease describes a task's lease relative to now.
func formatLease(t *ddbtrack.Task[Code], now time.Time) string {
	if t.LeaseOwner == "" {
		return "-"
	}
	if now.Before(t.LeaseExpiresAt) {
		return fmt.Sprintf("%s, expires in %s", clean(t.LeaseOwner, false), ops.Age(t.LeaseExpiresAt.Sub(now)))
	}
	return fmt.Sprintf("%s, expired %s ago", clean(t.LeaseOwner, false), ops.Age(now.Sub(t.LeaseExpiresAt)))
}

// plural returns "1 task" or "3 tasks".
func plural(n int64, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// matches returns "1 task matches" or "3 tasks match".
func matches(n int) string {
	if n == 1 {
		return "1 task matches"
	}
	return fmt.Sprintf("%d tasks match", n)
}

// them returns "it" for one and "them" for more.
func them(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}
