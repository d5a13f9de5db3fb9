package ddbexpr_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/internal/ddbexpr"
)

func n(s string) types.AttributeValue { return &types.AttributeValueMemberN{Value: s} }

func TestBuild(t *testing.T) {
	t.Parallel()
	var e ddbexpr.Expr
	e.Set("status", n("3")).
		SetExpr("#started_at = :now").
		Remove("lease_token", "last_error").
		Add("fence", n("1")).
		Where("#lease_expires_at < :now").
		Value("now", n("100"))
	b, err := e.Build()
	require.NoError(t, err)
	require.Equal(t, "SET #status = :status, #started_at = :now REMOVE #lease_token, #last_error ADD #fence :fence", *b.Update)
	require.Equal(t, "#lease_expires_at < :now", *b.Condition)
	require.Equal(t, map[string]string{
		"#status": "status", "#started_at": "started_at", "#lease_token": "lease_token",
		"#last_error": "last_error", "#fence": "fence", "#lease_expires_at": "lease_expires_at",
	}, b.Names)
	require.Len(t, b.Values, 3)
}

func TestBuildConditionOnly(t *testing.T) {
	t.Parallel()
	var e ddbexpr.Expr
	b, err := e.Where("attribute_not_exists(#pk)").Build()
	require.NoError(t, err)
	require.Nil(t, b.Update)
	require.Nil(t, b.Values)
	require.Equal(t, map[string]string{"#pk": "pk"}, b.Names)
}

func TestBuildRejectsMismatchedValues(t *testing.T) {
	t.Parallel()
	var e ddbexpr.Expr
	_, err := e.Where("#a = :missing").Value("spare", n("1")).Build()
	require.ErrorContains(t, err, "placeholder :missing has no value")
	require.ErrorContains(t, err, "value :spare is not used")
}

func TestBuildRejectsTwoValues(t *testing.T) {
	t.Parallel()
	var e ddbexpr.Expr
	_, err := e.Set("a", n("1")).Value("a", n("2")).Build()
	require.ErrorContains(t, err, "placeholder :a is given two values")
}

// TestCacheBuild checks that a Cache gives each request its own values,
// the same text as Build, and tells apart shapes whose parts have the
// same kinds and lengths.
func TestCacheBuild(t *testing.T) {
	t.Parallel()
	var c ddbexpr.Cache
	build := func(attr, v string) ddbexpr.Built {
		var e ddbexpr.Expr
		e.Set(attr, n(v)).Remove("gone").Where("attribute_exists(#pk) AND #"+attr+" < :limit").Value("limit", n("9"))
		want, err := e.Build()
		require.NoError(t, err)
		got, err := c.Build(&e)
		require.NoError(t, err)
		require.Equal(t, want, got)
		return got
	}
	first, second := build("ab", "1"), build("ab", "2")
	require.Same(t, first.Update, second.Update, "the second build of a shape reuses the first one's text")
	require.Equal(t, map[string]types.AttributeValue{":ab": n("1"), ":limit": n("9")}, first.Values)
	require.Equal(t, map[string]types.AttributeValue{":ab": n("2"), ":limit": n("9")}, second.Values)

	other := build("cd", "3") // Same kinds and lengths as "ab": the same key.
	require.Equal(t, "SET #cd = :cd REMOVE #gone", *other.Update)
	require.Equal(t, map[string]string{"#cd": "cd", "#gone": "gone", "#pk": "pk"}, other.Names)

	var bad ddbexpr.Expr
	_, err := c.Build(bad.Where("#a = :missing"))
	require.ErrorContains(t, err, "placeholder :missing has no value")
}
