package ops

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The masks Normalize applies, in order. Each replaces what varies between
// occurrences of one cause with a placeholder in angle brackets (or an
// ellipsis inside the quotes), so that "timeout after 30s calling
// 10.0.3.7:443" and "timeout after 31s calling 10.0.3.9:443" fall in one
// group.
var (
	// Quoted values: Go's %q (with escapes), backticks, and single quotes
	// that open after a space or punctuation, so that the apostrophe in
	// "can't" does not start a quote.
	doubleQuotedRE = regexp.MustCompile(`"(?:[^"\\\n]|\\.)*"`)
	backtickRE     = regexp.MustCompile("`[^`\n]*`")
	singleQuotedRE = regexp.MustCompile(`(^|[^\w'])'[^'\n]*'`)

	uuidRE  = regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	timeRE  = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?`)
	emailRE = regexp.MustCompile(`[\w.+-]+@[\w-]+(?:\.[\w-]+)+`)
	ipv4RE  = regexp.MustCompile(`\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b`)
	// IPv6 addresses, in brackets with a port as Go prints them, or bare;
	// candidates are confirmed with net.ParseIP, because "std::io" has
	// the same shape.
	ipv6BracketRE = regexp.MustCompile(`\[([0-9A-Fa-f:.]+)\](?::\d+)?`)
	ipv6RE        = regexp.MustCompile(`[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}`)
	hexRE         = regexp.MustCompile(`\b0[xX][0-9a-fA-F]+\b`)
	// Long tokens of letters and digits mixed: request IDs, hashes, keys.
	// Words have no digits, and numbers no letters, so neither is caught.
	tokenRE = regexp.MustCompile(`\b[A-Za-z0-9_\-]{12,}\b`)
	// Numbers that stand on their own or lead a unit ("30s", "5ms"), with
	// their dotted parts ("1.5", "10.0.3.1001"), but not digits inside a
	// word ("s3", "utf8", "v2.1").
	numberRE = regexp.MustCompile(`(^|[^\w.])\d+(?:\.\d+)*`)
	spacesRE = regexp.MustCompile(`[ \t]+`)
)

// maxPatternRunes bounds a normalised message, so that a group's key stays
// short whatever a task's error holds.
const maxPatternRunes = 400

// Normalize masks what varies between occurrences of the same error, so
// that errors with one cause compare equal: quoted values, UUIDs, times,
// e-mail and IP addresses, hex numbers, long mixed tokens such as request
// IDs, and numbers. Runs of spaces are collapsed and lines trimmed. The
// result is cut at 400 characters.
func Normalize(msg string) string {
	s := doubleQuotedRE.ReplaceAllString(msg, `"…"`)
	s = backtickRE.ReplaceAllString(s, "`…`")
	s = singleQuotedRE.ReplaceAllString(s, `$1'…'`)
	s = uuidRE.ReplaceAllString(s, "<uuid>")
	s = timeRE.ReplaceAllString(s, "<time>")
	s = emailRE.ReplaceAllString(s, "<email>")
	s = ipv4RE.ReplaceAllString(s, "<ip>")
	s = ipv6BracketRE.ReplaceAllStringFunc(s, func(m string) string {
		if net.ParseIP(ipv6BracketRE.FindStringSubmatch(m)[1]) != nil {
			return "<ip>"
		}
		return m
	})
	s = replaceIPv6(s)
	s = hexRE.ReplaceAllString(s, "<hex>")
	s = tokenRE.ReplaceAllStringFunc(s, func(m string) string {
		if strings.ContainsFunc(m, unicode.IsDigit) && strings.ContainsFunc(m, unicode.IsLetter) {
			return "<id>"
		}
		return m
	})
	s = numberRE.ReplaceAllString(s, "$1<n>")

	var lines []string
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(spacesRE.ReplaceAllString(line, " "))
		lines = append(lines, line)
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	s = strings.Join(lines, "\n")
	if utf8.RuneCountInString(s) > maxPatternRunes {
		s = string([]rune(s)[:maxPatternRunes-1]) + "…"
	}
	return s
}

// replaceIPv6 masks bare IPv6 addresses. A candidate counts only if it
// parses as an address, holds a digit, and does not continue a word.
func replaceIPv6(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range ipv6RE.FindAllStringIndex(s, -1) {
		cand := s[m[0]:m[1]]
		// The pattern takes a colon that ends a sentence ("on fd00::53:")
		// as part of the address.
		if net.ParseIP(cand) == nil && strings.HasSuffix(cand, ":") {
			cand, m[1] = cand[:len(cand)-1], m[1]-1
		}
		before := rune(0)
		if m[0] > 0 {
			before, _ = utf8.DecodeLastRuneInString(s[:m[0]])
		}
		if net.ParseIP(cand) == nil || !strings.ContainsFunc(cand, unicode.IsDigit) ||
			unicode.IsLetter(before) || unicode.IsDigit(before) || before == '_' {
			continue
		}
		b.WriteString(s[last:m[0]])
		b.WriteString("<ip>")
		last = m[1]
	}
	b.WriteString(s[last:])
	return b.String()
}

// GroupID names a normalised message in a form short enough to type, for
// `ddbtrack requeue --group ID` and for links.
func GroupID(pattern string) string {
	sum := sha256.Sum256([]byte(pattern))
	return hex.EncodeToString(sum[:5])
}

// ErrorGroup is the tasks whose last errors normalise to one message.
type ErrorGroup struct {
	// ID names the group: [GroupID] of Pattern.
	ID string `json:"id"`
	// Pattern is the normalised message.
	Pattern string `json:"pattern"`
	// Count is the number of tasks in the group.
	Count int `json:"count"`
	// FirstSeen and LastSeen are the earliest and latest time a task of the
	// group last changed status, which for a failed task is when it failed.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Example is the task that failed last, and ExampleError its error as
	// stored.
	Example      string `json:"example"`
	ExampleError string `json:"example_error"`
}

// ErrorReport is the errors of a job's failed and ignored tasks, grouped.
type ErrorReport struct {
	// Groups holds the groups, the largest first.
	Groups []ErrorGroup `json:"groups"`
	// Tasks is the number of tasks read.
	Tasks int `json:"tasks"`
	// Truncated says reading stopped at the limit, so the groups describe
	// the newest tasks only.
	Truncated bool `json:"truncated"`
}

// DefaultErrorLimit is how many tasks [Job.Errors] reads at most by
// default: enough for the failures of a bad night, bounded so that a page
// load stays a few seconds on a job with millions of failures.
const DefaultErrorLimit = 20000

// Errors reads the tasks the filter selects, newest change first, up to
// limit of them (0 means DefaultErrorLimit), and groups them by their
// normalised last error. Statuses default to the Failed and Ignored roles.
// Tasks without an error are left out.
func (j *Job[S]) Errors(ctx context.Context, f Filter[S], now time.Time, limit int) (ErrorReport, error) {
	if len(f.Statuses) == 0 && !f.Stuck {
		f.Statuses = []S{j.st.Of(Failed), j.st.Of(Ignored)}
	}
	if limit <= 0 {
		limit = DefaultErrorLimit
	}
	var rep ErrorReport
	groups := map[string]*ErrorGroup{}
	for t, err := range j.All(ctx, f, now, newestFirst) {
		if err != nil {
			return ErrorReport{}, err
		}
		if rep.Tasks == limit {
			rep.Truncated = true
			break
		}
		rep.Tasks++
		if t.LastError == "" {
			continue
		}
		p := Normalize(t.LastError)
		g := groups[p]
		if g == nil {
			// The newest task comes first, so it is the example.
			g = &ErrorGroup{ID: GroupID(p), Pattern: p, LastSeen: t.UpdatedAt, Example: t.ID, ExampleError: t.LastError}
			groups[p] = g
		}
		g.Count++
		g.FirstSeen = t.UpdatedAt
	}
	for _, g := range groups {
		rep.Groups = append(rep.Groups, *g)
	}
	slices.SortFunc(rep.Groups, func(a, b ErrorGroup) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), b.LastSeen.Compare(a.LastSeen), strings.Compare(a.Pattern, b.Pattern))
	})
	return rep, nil
}
