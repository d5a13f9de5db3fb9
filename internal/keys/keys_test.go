package keys_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// TestShardVector pins the shard function to FNV-1a (32-bit) modulo the
// shard count; the expected values were computed outside Go. A change here moves tasks to
// other index partitions, which strands every task already stored.
func TestShardVector(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id     string
		shards int
		want   int
	}{
		{"t-1", 1, 0},
		{"t-1", 8, 1},
		{"t-2", 8, 0},
		{"task-000042", 8, 5},
		{"", 8, 5},
		{"ünïcode", 16, 11},
		{"t-1", 0, 0},
	}
	for _, c := range cases {
		require.Equal(t, c.want, keys.Shard(c.id, c.shards), "Shard(%q, %d)", c.id, c.shards)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	require.Equal(t, "job#t-1", keys.Task("job", "t-1"))
	require.Equal(t, "job#a#b", keys.Task("job", "a#b"))
	require.Equal(t, "job#6#3", keys.Status("job", 6, 3))
	require.Equal(t, "001764244800000#t-1", keys.Order(1764244800000, "t-1"))
	require.Equal(t, "000000000000000#", keys.Order(0, ""))
	require.Equal(t, int64(1764244800000), keys.OrderTime(keys.Order(1764244800000, "x#y")))
	// The bound sorts after every key of its millisecond and before the next.
	require.Less(t, keys.Order(5, "\U0010ffff\U0010ffff"), keys.OrderBound(5))
	require.Less(t, keys.OrderBound(5), keys.Order(6, ""))
}

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, job, task, want string
	}{
		{"ok", "job", "t-1", ""},
		{"task with separator is fine", "job", "a#b", ""},
		{"empty job", "", "t", "job ID is empty"},
		{"separator in job", "a#b", "t", `contains "#"`},
		{"bad utf8 job", "\xff", "t", "not valid UTF-8"},
		{"empty task", "job", "", "task ID is empty"},
		{"bad utf8 task", "job", "\xff", "not valid UTF-8"},
		{"task too long", "job", strings.Repeat("x", 1009), "over the limit of 1008"},
		{"task at the limit", "job", strings.Repeat("x", 1008), ""},
		{"job too long", strings.Repeat("j", 1001), "t", "job ID is 1001 bytes, over the limit of 1000"},
		{"job at the limit, longest task", strings.Repeat("j", 1000), strings.Repeat("x", 1008), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if problem, fix := keys.CheckJob(c.job); problem != "" {
				err = fmt.Errorf("job ID %s: %s", problem, fix)
			} else if problem, fix := keys.CheckTask(c.task); problem != "" {
				err = fmt.Errorf("task ID %s: %s", problem, fix)
			}
			if c.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, c.want)
		})
	}
}
