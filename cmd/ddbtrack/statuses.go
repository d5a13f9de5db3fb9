package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

// Code is a stored status value. The command cannot know a job's Go enum,
// so it uses Code as the tracker's status type and learns the names from
// --statuses.
//
// The library calls String to write status_name whenever it changes a
// task's status (reset, requeue), so the names must be the job's own, or the
// command would rename statuses behind the job's back. That is why
// --statuses carries names as well as values.
type Code int

// codeNames maps codes to names for Code.String. It is process-wide because
// String has no other way to reach it; [statusSpec.register] fills it.
var codeNames atomic.Pointer[map[Code]string]

// String returns the status's name, or "status(N)" for a value with no name,
// the same fallback the library uses.
func (c Code) String() string {
	if m := codeNames.Load(); m != nil {
		if n, ok := (*m)[c]; ok {
			return n
		}
	}
	return fmt.Sprintf("status(%d)", int(c))
}

// defaultStatuses is the seed notebook's enum, which `make demo` uses.
const defaultStatuses = "pending:s00_todo=0,running:s03_in_progress=3,failed:s06_failed=6,succeeded:s09_success=9,ignored:s10_ignore=10"

// statusSpec is a parsed --statuses: the value of each role, the name of
// every value, and the values outside the roles.
type statusSpec struct {
	role  map[ops.Role]Code
	names map[Code]string
	extra []Code
}

// parseStatuses reads a comma-separated list of statuses. Each entry is
// one of
//
//	role:name=value   a role with the job's name for it, e.g. failed:s06_failed=6
//	role=value        a role whose name is the role itself, e.g. failed=6
//	name=value        a status outside the roles, e.g. s20_exported=20
//
// where role is pending, running, failed, succeeded or ignored. Every role
// must be given exactly once, and values and names must be distinct.
func parseStatuses(spec string) (*statusSpec, error) {
	s := &statusSpec{role: map[ops.Role]Code{}, names: map[Code]string{}}
	seenName := map[string]bool{}
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		left, valueText, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("status %q has no value: write it as role:name=value, e.g. failed:s06_failed=6", entry)
		}
		v, err := strconv.Atoi(strings.TrimSpace(valueText))
		if err != nil {
			return nil, fmt.Errorf("status %q: the value %q is not an integer", entry, valueText)
		}
		c := Code(v)
		left = strings.TrimSpace(left)
		roleText, name, hasRole := strings.Cut(left, ":")
		var role ops.Role
		switch {
		case hasRole:
			role = ops.Role(strings.TrimSpace(roleText))
			if !slices.Contains(ops.Roles, role) {
				return nil, fmt.Errorf("status %q: %q is not a role: use pending, running, failed, succeeded or ignored", entry, roleText)
			}
		case slices.Contains(ops.Roles, ops.Role(left)):
			role, name = ops.Role(left), left
		default:
			name = left
		}
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, fmt.Errorf("status %q has an empty name", entry)
		}
		if _, dup := s.names[c]; dup {
			return nil, fmt.Errorf("status value %d is given twice: each status needs its own value", v)
		}
		if seenName[name] {
			return nil, fmt.Errorf("status name %q is given twice: each status needs its own name", name)
		}
		seenName[name] = true
		s.names[c] = name
		if role == "" {
			s.extra = append(s.extra, c)
			continue
		}
		if prev, dup := s.role[role]; dup {
			return nil, fmt.Errorf("role %s is given twice (values %d and %d): give each role one status", role, prev, v)
		}
		s.role[role] = c
	}
	for _, r := range ops.Roles {
		if _, ok := s.role[r]; !ok {
			return nil, fmt.Errorf("no status has the %s role: add %s:NAME=VALUE to the list (the default is %q)", r, r, defaultStatuses)
		}
	}
	slices.Sort(s.extra)
	return s, nil
}

// register makes Code.String return these names. Call it before the
// tracker writes anything.
func (s *statusSpec) register() {
	for {
		old := codeNames.Load()
		merged := map[Code]string{}
		if old != nil {
			maps.Copy(merged, *old)
		}
		maps.Copy(merged, s.names)
		if codeNames.CompareAndSwap(old, &merged) {
			return
		}
	}
}

// config returns the tracker configuration of the roles. The command never
// starts a task; listing the other statuses as startable only tells the
// tracker, and so the dashboard and stats, that they belong to the job.
func (s *statusSpec) config(table, job string) ddbtrack.Config[Code] {
	return ddbtrack.Config[Code]{
		Table:     table,
		Job:       job,
		Pending:   s.role[ops.Pending],
		Running:   s.role[ops.Running],
		Failed:    s.role[ops.Failed],
		Succeeded: s.role[ops.Succeeded],
		Ignored:   s.role[ops.Ignored],
		Startable: s.extra,
	}
}
