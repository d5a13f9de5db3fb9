package opsfixture

import (
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestScaleItemsSpreadOverThreeDays: the kth of n tasks of a status
// changed status k/n of the way through the three days before now, at
// every size the benchmarks use.
func TestScaleItemsSpreadOverThreeDays(t *testing.T) {
	now := Start
	first, last := now.Add(-time.Minute-72*time.Hour), now.Add(-time.Minute)
	for _, n := range []int{1_000, 67_372, 674_872, 6_748_720} {
		prev := first.Add(-time.Millisecond)
		for _, k := range []int{0, n / 4, n / 2, 3 * n / 4, n - 1} {
			item := scaleItem(k, Succeeded, k, n, 0, now)
			ms, err := strconv.ParseInt(item["updated_at"].(*types.AttributeValueMemberN).Value, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			at := time.UnixMilli(ms).UTC()
			want := first.Add(time.Duration(float64(72*time.Hour) * float64(k) / float64(n)))
			if at.Before(prev) || at.Before(first) || at.After(last) || at.Sub(want).Abs() > time.Millisecond {
				t.Errorf("task %d of %d changed at %v, want %v, between %v and %v, after the one before (%v)", k, n, at, want, first, last, prev)
			}
			prev = at
		}
	}
}
