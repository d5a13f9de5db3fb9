package ddbexpr_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/internal/ddbexpr"
)

// TestBuildWholeTokens checks that a placeholder is matched as a whole
// token: :now is not used by an expression that only uses :nowhere.
func TestBuildWholeTokens(t *testing.T) {
	t.Parallel()
	var e ddbexpr.Expr
	_, err := e.SetExpr("#a = :nowhere").Value("nowhere", n("1")).Value("now", n("2")).Build()
	require.ErrorContains(t, err, "value :now is not used")
	require.NotContains(t, err.Error(), ":nowhere is not used")

	var ok ddbexpr.Expr
	b, err := ok.SetExpr("#a = :now, #b = :now").Where("#c < :now").Value("now", n("2")).Build()
	require.NoError(t, err)
	require.Len(t, b.Names, 3)
}

// BenchmarkBuild builds an expression shaped like ddbtrack's claim, the
// largest it sends.
func BenchmarkBuild(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		var e ddbexpr.Expr
		e.Set("status", n("3")).Set("status_name", n("3")).Set("status_key", n("3")).
			SetExpr("#updated_at = :now").SetExpr("#started_at = :now").
			Set("lease_owner", n("1")).Set("lease_token", n("1")).Set("lease_expires_at", n("1")).
			Add("attempts", n("1")).Add("fence", n("1")).
			Where("attribute_exists(#pk) AND (#status IN (:s0, :s1) OR (#status = :status AND #lease_expires_at < :now))").
			Value("now", n("100")).Value("s0", n("0")).Value("s1", n("6"))
		if _, err := e.Build(); err != nil {
			b.Fatal(err)
		}
	}
}
