// Package keys encodes ddbtrack's DynamoDB keys: the table's partition key,
// and the status index's sharded partition key and its sort key.
//
// The encoding is part of the stored format. Changing it orphans every task
// already written, so the test vectors in keys_test.go pin it.
package keys

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sep separates the parts of a key. A job ID may not contain it, because
// "a#b"+"c" and "a"+"b#c" would otherwise encode to the same key. A task ID
// is always the last part, so it may contain anything.
const Sep = "#"

// MaxSortKeyBytes is DynamoDB's limit on a sort key value. Its limit on a
// partition key, 2048 bytes, never binds: a job and a task ID that fit the
// sort key fit it too.
const MaxSortKeyBytes = 1024

// timeDigits is the width of the zero-padded epoch milliseconds that start
// a sort key. Fifteen digits last until the year 33658.
const timeDigits = 15

// MaxJobBytes is the longest job ID: a table lists its jobs in the status
// index with the job as the sort key, whose limit it must leave room in.
const MaxJobBytes = 1000

// MaxTaskIDBytes is the longest task ID whose sort key fits DynamoDB's
// limit: the time, the separator, and the ID.
const MaxTaskIDBytes = MaxSortKeyBytes - timeDigits - len(Sep)

// Task returns the table's partition key for a task of a job.
func Task(job, taskID string) string {
	return job + Sep + taskID
}

// Status returns the status index's partition key for a task: the job, the
// status and the task's shard. Spreading a status over shards keeps a busy
// status from becoming one hot index partition.
func Status(job string, status, shard int) string {
	return job + Sep + strconv.Itoa(status) + Sep + strconv.Itoa(shard)
}

// Order returns the status index's sort key for a task due at ms (epoch
// milliseconds): the time, zero-padded so that strings sort as numbers do,
// then the task ID. It orders every index partition by due time and then
// by ID, a total order, so that a page boundary never falls inside a run of
// equal times and a cursor is simply the last key read.
func Order(ms int64, taskID string) string {
	// Every write that changes a status makes one, so it is written with
	// a single allocation.
	var buf [20]byte
	digits := strconv.AppendInt(buf[:0], max(ms, 0), 10)
	var sb strings.Builder
	sb.Grow(max(timeDigits, len(digits)) + len(Sep) + len(taskID))
	for range timeDigits - len(digits) {
		sb.WriteByte('0')
	}
	sb.Write(digits)
	sb.WriteString(Sep)
	sb.WriteString(taskID)
	return sb.String()
}

// OrderBound returns the sort key that is greater than every task's key at
// ms and less than every key at ms+1: for "due at or before ms".
func OrderBound(ms int64) string {
	// '$' sorts right after the separator '#', and no key has anything but
	// '#' after its digits.
	return strings.TrimSuffix(Order(ms, ""), Sep) + "$"
}

// OrderTime returns the due time, in epoch milliseconds, that a sort key
// starts with.
func OrderTime(key string) int64 {
	if len(key) < timeDigits {
		return 0
	}
	ms, _ := strconv.ParseInt(key[:timeDigits], 10, 64)
	return ms
}

// OrderID returns the task ID that a sort key ends with.
func OrderID(key string) string {
	if len(key) <= timeDigits+len(Sep) {
		return ""
	}
	return key[timeDigits+len(Sep):]
}

// Shard returns the shard of a task ID among n shards. It is FNV-1a, which
// is stable across processes, machines and Go releases; a seeded hash such
// as hash/maphash would scatter one task over shards between runs.
func Shard(taskID string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(taskID))
	return int(h.Sum32() % uint32(n))
}

// CheckJob reports why a job ID cannot be used, and how to fix it, or
// returns two empty strings.
func CheckJob(job string) (problem, fix string) {
	switch {
	case job == "":
		return "is empty", fmt.Sprintf("set it to a name for this job, such as %q", "nightly-import")
	case strings.Contains(job, Sep):
		return fmt.Sprintf("is %q, which contains %q, the separator of ddbtrack's key parts", job, Sep), "use another character, such as '-' or '/'"
	case !utf8.ValidString(job):
		return fmt.Sprintf("is %q, which is not valid UTF-8", job), "DynamoDB string keys must be UTF-8: use a UTF-8 name"
	case len(job) > MaxJobBytes:
		return fmt.Sprintf("is %d bytes, over the limit of %d", len(job), MaxJobBytes), "use a shorter job ID"
	}
	return "", ""
}

// CheckTask reports why a task ID cannot be used in a job, and how to fix
// it, or returns two empty strings.
func CheckTask(taskID string) (problem, fix string) {
	switch {
	case taskID == "":
		return "is empty", "give every task a non-empty ID that is unique within its job"
	case !utf8.ValidString(taskID):
		return fmt.Sprintf("%q is not valid UTF-8", taskID), "DynamoDB string keys must be UTF-8: encode binary IDs as hex or base64"
	}
	// A job of MaxJobBytes leaves room for the longest ID in the
	// partition key too, so the sort key's limit is the one that binds.
	if len(taskID) > MaxTaskIDBytes {
		return fmt.Sprintf("is %d bytes, over the limit of %d that DynamoDB's key sizes leave it", len(taskID), MaxTaskIDBytes),
			"use a shorter ID, such as a hash of the long one"
	}
	return "", ""
}
