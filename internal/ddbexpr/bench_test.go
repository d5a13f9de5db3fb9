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
// largest it sends, from scratch (cache=none) and through a Cache, as
// ddbtrack does (cache=warm).
func BenchmarkBuild(b *testing.B) {
	av := n("3")
	claim := func(e *ddbexpr.Expr) *ddbexpr.Expr {
		return e.Set("status", av).Set("status_name", av).Set("status_key", av).
			SetExpr("#updated_at = :now").SetExpr("#started_at = :now").
			Set("lease_owner", av).Set("lease_token", av).Set("lease_expires_at", av).
			Add("attempts", av).Add("fence", av).
			Where("attribute_exists(#pk) AND (#status IN (:s0, :s1) OR (#status = :status AND #lease_expires_at < :now))").
			Value("now", av).Value("s0", av).Value("s1", av)
	}
	b.Run("cache=none", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var e ddbexpr.Expr
			if _, err := claim(&e).Build(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cache=warm", func(b *testing.B) {
		var c ddbexpr.Cache
		b.ReportAllocs()
		for range b.N {
			var e ddbexpr.Expr
			if _, err := c.Build(claim(&e)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
