package ops_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
	"github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "connection reset by peer", "connection reset by peer"},
		{"numbers and units", "timeout after 30s (attempt 3 of 5, 1.5ms)", "timeout after <n>s (attempt <n> of <n>, <n>ms)"},
		{"digits inside words stay", "s3 upload via utf8 v2 codec failed", "s3 upload via utf8 v2 codec failed"},
		{"path with numbers", "decode photos/00017.jpg: bad header", "decode photos/<n>.jpg: bad header"},
		{"negative number", "offset -42 out of range", "offset -<n> out of range"},
		{"dotted numbers", "no route to 10.1.0.1001 (build 2024.12.1)", "no route to <n> (build <n>)"},
		{"versions stay", "needs v2.1.3 or later", "needs v2.1.3 or later"},
		{"double quotes", `unsupported color profile "CMYK"`, `unsupported color profile "…"`},
		{"go quoting with escapes", `bad key "a\"b\\c" in map`, `bad key "…" in map`},
		{"backticks", "column `amount` is text", "column `…` is text"},
		{"single quotes", "no such table 'orders_2024'", "no such table '…'"},
		{"apostrophes are not quotes", "can't connect: server's gone", "can't connect: server's gone"},
		{"uuid", "order 3F2504E0-4F89-11D3-9A0C-0305E82C3301 not found", "order <uuid> not found"},
		{"hex", "nil pointer at 0xc000123abc", "nil pointer at <hex>"},
		{"request ID", "RequestID: 5RJ1KAQ7M5C4B2GNDNL3VSVBLKFPBVVV4KQNSO5AEMVJF66Q9ASUAAJG, throttled", "RequestID: <id>, throttled"},
		{"hash", "checksum mismatch: want 9f86d081884c7d65 got e3b0c44298fc1c14", "checksum mismatch: want <id> got <id>"},
		{"words are not tokens", "ConditionalCheckFailedException", "ConditionalCheckFailedException"},
		{"ipv4 with port", "dial tcp 10.0.3.7:5432: connect: connection refused", "dial tcp <ip>: connect: connection refused"},
		{"ipv6 in brackets", "dial tcp [2001:db8::1]:443: i/o timeout", "dial tcp <ip>: i/o timeout"},
		{"bare ipv6", "lookup db on fd00::53: no such host", "lookup db on <ip>: no such host"},
		{"not ipv6", "std::io::Error and 12:34:56", "std::io::Error and <n>:<n>:<n>"},
		{"email", "mail to ops+alerts@example.com bounced", "mail to <email> bounced"},
		{"time", "lease expired at 2025-01-02T03:04:05.123Z, now 2025-01-02 03:05", "lease expired at <time>, now <time>"},
		{"date", "no file for 2024-12-30", "no file for <time>"},
		{"spaces collapse", "  too   many\t spaces  ", "too many spaces"},
		{"lines kept, trimmed", "schema mismatch: column \"amount\"\n   in row 17  \n\n", "schema mismatch: column \"…\"\nin row <n>"},
		{"one cause, other details", "upstream returned 503 for batch 12", "upstream returned <n> for batch <n>"},
	} {
		require.Equal(t, tc.want, ops.Normalize(tc.in), tc.name)
	}
}

func TestNormalizeGroupsOneCause(t *testing.T) {
	t.Parallel()
	a := ops.Normalize(`timeout after 30s calling "https://api.example.com/v1" from 10.0.3.7:443 (request 3f2504e0-4f89-11d3-9a0c-0305e82c3301)`)
	b := ops.Normalize(`timeout after 31s calling "https://api.example.com/v2" from 10.0.3.9:443 (request 7c9e6679-7425-40de-944b-e07fc1f90ae7)`)
	require.Equal(t, a, b)
	require.Equal(t, ops.GroupID(a), ops.GroupID(b))
	require.NotEqual(t, ops.GroupID(a), ops.GroupID(ops.Normalize("connection reset by peer")))
	require.Len(t, ops.GroupID(a), 10)
}

func TestNormalizeBoundsLength(t *testing.T) {
	t.Parallel()
	long := ops.Normalize(strings.Repeat("word ", 500))
	require.LessOrEqual(t, len([]rune(long)), 400)
	require.True(t, len(long) > 0 && []rune(long)[len([]rune(long))-1] == '…')
}

// causes returns the ID and error of the ith of n failures spread over four
// causes, each error with its own numbers, addresses and IDs, as real
// errors of one cause differ: 40% time out, 30% are refused, 20% hit a
// bad row and 10% a missing file.
func causes(i int) (string, string) {
	id := fmt.Sprintf("f-%04d", i)
	switch {
	case i%10 < 4:
		return id, fmt.Sprintf("timeout after %ds calling 10.0.%d.%d:443", 30+i%7, i%4, i%250)
	case i%10 < 7:
		return id, fmt.Sprintf("dial tcp 10.1.%d.%d:5432: connect: connection refused", i%3, i%200)
	case i%10 < 9:
		return id, fmt.Sprintf("row %d: column %q is text, want numeric (request %08x-aaaa-bbbb-cccc-%012x)", i, "amount", i, i)
	default:
		return id, fmt.Sprintf("open s3://bucket/2024-12-%02d/part-%05d.csv: no such key", 1+i%28, i)
	}
}

func TestErrorsAndGroupRequeue(t *testing.T) {
	t.Parallel()
	fx := opsfixture.New(t)
	fx.Seed(t)
	fx.FailMany(t, 200, causes)
	job := ops.NewJob(fx.Tracker)
	now := fx.Clock.Now()

	rep, err := job.Errors(t.Context(), ops.Filter[opsfixture.Status]{}, now, 0)
	require.NoError(t, err)
	require.Equal(t, 200+4, rep.Tasks, "the failures, the seeded failed tasks and the ignored one")
	require.False(t, rep.Truncated)
	var got []string
	for _, g := range rep.Groups {
		got = append(got, fmt.Sprintf("%d %s", g.Count, g.Pattern))
	}
	require.Equal(t, []string{
		"80 timeout after <n>s calling <ip>",
		"60 dial tcp <ip>: connect: connection refused",
		`40 row <n>: column "…" is text, want numeric (request <uuid>)`,
		"20 open s3://bucket/<time>/part-<n>.csv: no such key",
		"2 connection reset by peer",
		"1 bad input <script>window.__xss=<n></script><img src=x onerror=\"…\">",
		"1 schema mismatch: column \"…\" is text, want numeric\nin row <n>",
	}, got)
	top := rep.Groups[0]
	require.Equal(t, ops.GroupID(top.Pattern), top.ID)
	require.Regexp(t, `^timeout after \d+s calling 10\.0\.\d+\.\d+:443$`, top.ExampleError)
	require.False(t, top.FirstSeen.After(top.LastSeen))

	limited, err := job.Errors(t.Context(), ops.Filter[opsfixture.Status]{}, now, 50)
	require.NoError(t, err)
	require.True(t, limited.Truncated)
	require.Equal(t, 50, limited.Tasks)

	// A group is requeued whole, after a dry run counts it.
	f := ops.Filter[opsfixture.Status]{Statuses: []opsfixture.Status{opsfixture.Failed, opsfixture.Ignored}, Group: rep.Groups[1].ID}
	dry, err := job.Requeue(t.Context(), f, now, true, nil)
	require.NoError(t, err)
	require.Equal(t, 60, dry.Matched)
	res, err := job.Requeue(t.Context(), f, now, false, nil)
	require.NoError(t, err)
	require.Equal(t, ddbtrack.RequeueResult{Matched: 60, Moved: 60}, res.RequeueResult)
	rep, err = job.Errors(t.Context(), ops.Filter[opsfixture.Status]{}, now, 0)
	require.NoError(t, err)
	require.Len(t, rep.Groups, 6, "the group is gone")
	require.Equal(t, 80, rep.Groups[0].Count, "the other groups stay")
}
