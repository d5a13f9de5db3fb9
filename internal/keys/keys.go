// Package keys encodes ddbtrack's DynamoDB keys: the table's partition key
// and the status index's sharded partition key.
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

// MaxKeyBytes is DynamoDB's limit on the size of a partition key value.
const MaxKeyBytes = 2048

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

// CheckJob reports why a job ID cannot be used, or nil.
func CheckJob(job string) error {
	switch {
	case job == "":
		return fmt.Errorf("job ID is empty: set Config.Job to a name for this job, such as %q", "nightly-import")
	case strings.Contains(job, Sep):
		return fmt.Errorf("job ID %q contains %q, which ddbtrack uses to separate key parts: use another character, such as '-' or '/'", job, Sep)
	case !utf8.ValidString(job):
		return fmt.Errorf("job ID %q is not valid UTF-8: DynamoDB string keys must be UTF-8", job)
	case len(job)+len(Sep)+1 > MaxKeyBytes:
		return fmt.Errorf("job ID is %d bytes, which leaves no room for task IDs under DynamoDB's %d-byte key limit: use a shorter job ID", len(job), MaxKeyBytes)
	}
	return nil
}

// CheckTask reports why a task ID cannot be used in a job, or nil.
func CheckTask(job, taskID string) error {
	switch {
	case taskID == "":
		return fmt.Errorf("task ID is empty: every task needs a non-empty ID that is unique within its job")
	case !utf8.ValidString(taskID):
		return fmt.Errorf("task ID %q is not valid UTF-8: DynamoDB string keys must be UTF-8; encode binary IDs as hex or base64", taskID)
	}
	if n := len(Task(job, taskID)); n > MaxKeyBytes {
		return fmt.Errorf("task ID is %d bytes, so its key would be %d bytes, over DynamoDB's %d-byte limit: use an ID of at most %d bytes, such as a hash of the long one",
			len(taskID), n, MaxKeyBytes, MaxKeyBytes-len(job)-len(Sep))
	}
	return nil
}
