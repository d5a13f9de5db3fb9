package ops

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Visible makes text from the table safe to show to a person, on a
// terminal or a page. Task IDs, owners and error messages come from users
// and their code, so they can hold anything:
//   - control characters, including the escape that starts a terminal
//     control sequence, which could retitle a terminal window or recolour
//     it;
//   - Unicode bidirectional controls and other invisible format characters,
//     which reorder or hide what is shown, so that "rtl-\u202Egnp.exe"
//     reads as "rtl-exe.png";
//   - bytes that are not UTF-8.
//
// Each of these is shown as its Go escape (\x1b, \u202e, \xff) instead.
// Newlines are kept only when keepNewlines is set; a tab becomes a space
// unless it is.
func Visible(s string, keepNewlines bool) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' && keepNewlines:
			b.WriteRune(r)
		case r == '\t':
			if keepNewlines {
				b.WriteRune(r)
			} else {
				b.WriteString(" ")
			}
		case hidden(r):
			q := fmt.Sprintf("%+q", string(r))
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// hidden reports whether a rune would act on the display instead of
// showing as a character: controls, line and paragraph separators,
// bidirectional controls and the other invisible format characters, such
// as zero-width spaces.
func hidden(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' ||
		unicode.Is(unicode.Bidi_Control, r) || unicode.Is(unicode.Cf, r)
}

// IsVisible reports whether Visible would show s unchanged, keeping
// newlines or not.
func IsVisible(s string, keepNewlines bool) bool {
	return Visible(s, keepNewlines) == s
}
