// Package ops holds what the ddbtrack command and its dashboard share: a
// status type that stands in for a job's own enum, the filters that select
// tasks, and the parsing of times and statuses typed by an operator.
package ops

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Code is a stored status value. The command cannot know a job's Go enum,
// so it uses Code as the tracker's status type and learns the names from
// [Statuses].
//
// The library calls String to write status_name whenever it changes a
// task's status (reset, requeue), so the names must be the job's own, or the
// command would rename statuses behind the job's back. That is why
// --statuses carries names as well as values.
type Code int

// names maps codes to names for Code.String. It is process-wide because
// String has no other way to reach it; [Statuses.Register] fills it.
var names atomic.Pointer[map[Code]string]

// String returns the status's name, or "status(N)" for a value with no name,
// the same fallback the library uses.
func (c Code) String() string {
	if m := names.Load(); m != nil {
		if n, ok := (*m)[c]; ok {
			return n
		}
	}
	return fmt.Sprintf("status(%d)", int(c))
}

// Role names one of the five statuses the tracker moves tasks between.
type Role string

// The five roles, in the order a task meets them.
const (
	Pending   Role = "pending"
	Running   Role = "running"
	Failed    Role = "failed"
	Succeeded Role = "succeeded"
	Ignored   Role = "ignored"
)

// Roles lists the five roles in lifecycle order.
var Roles = []Role{Pending, Running, Failed, Succeeded, Ignored}

// DefaultStatuses is the seed notebook's enum, which `make demo` uses.
const DefaultStatuses = "pending:s00_todo=0,running:s03_in_progress=3,failed:s06_failed=6,succeeded:s09_success=9,ignored:s10_ignore=10"

// Statuses describes a job's status enum: which value plays each role, the
// name of every value, and any statuses outside the roles, such as a
// pipeline's earlier steps.
type Statuses struct {
	role  map[Role]Code
	names map[Code]string
	roles map[Code]Role
}

// ParseStatuses reads a comma-separated list of statuses. Each entry is
// one of
//
//	role:name=value   a role with the job's name for it, e.g. failed:s06_failed=6
//	role=value        a role whose name is the role itself, e.g. failed=6
//	name=value        a status outside the roles, e.g. s20_exported=20
//
// where role is pending, running, failed, succeeded or ignored. Every role
// must be given exactly once, and values and names must be distinct.
func ParseStatuses(spec string) (*Statuses, error) {
	s := &Statuses{role: map[Role]Code{}, names: map[Code]string{}, roles: map[Code]Role{}}
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
		var role Role
		switch {
		case hasRole:
			role = Role(strings.TrimSpace(roleText))
			if !slices.Contains(Roles, role) {
				return nil, fmt.Errorf("status %q: %q is not a role: use pending, running, failed, succeeded or ignored", entry, roleText)
			}
		case slices.Contains(Roles, Role(left)):
			role, name = Role(left), left
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
		if role != "" {
			if prev, dup := s.role[role]; dup {
				return nil, fmt.Errorf("role %s is given twice (values %d and %d): give each role one status", role, prev, v)
			}
			s.role[role] = c
			s.roles[c] = role
		}
	}
	for _, r := range Roles {
		if _, ok := s.role[r]; !ok {
			return nil, fmt.Errorf("no status has the %s role: add %s:NAME=VALUE to the list (the default is %q)", r, r, DefaultStatuses)
		}
	}
	return s, nil
}

// MustParseStatuses is ParseStatuses for specs known to be valid, such as
// DefaultStatuses.
func MustParseStatuses(spec string) *Statuses {
	s, err := ParseStatuses(spec)
	if err != nil {
		panic(err)
	}
	return s
}

// Register makes Code.String return these names. Call it once, before the
// tracker writes anything.
func (s *Statuses) Register() {
	for {
		old := names.Load()
		merged := map[Code]string{}
		if old != nil {
			maps.Copy(merged, *old)
		}
		maps.Copy(merged, s.names)
		if names.CompareAndSwap(old, &merged) {
			return
		}
	}
}

// Of returns the status that plays a role.
func (s *Statuses) Of(r Role) Code { return s.role[r] }

// RoleOf returns the role a status plays, or "" for a status outside the
// roles.
func (s *Statuses) RoleOf(c Code) Role { return s.roles[c] }

// Name returns the status's name, or "status(N)" for a value the list does
// not name.
func (s *Statuses) Name(c Code) string {
	if n, ok := s.names[c]; ok {
		return n
	}
	return fmt.Sprintf("status(%d)", int(c))
}

// All returns every listed status, by value.
func (s *Statuses) All() []Code {
	return slices.Sorted(maps.Keys(s.names))
}

// Extra returns the listed statuses outside the five roles, by value.
func (s *Statuses) Extra() []Code {
	var out []Code
	for _, c := range s.All() {
		if s.roles[c] == "" {
			out = append(out, c)
		}
	}
	return out
}

// Lookup finds a status by role, name or value, as an operator types it:
// "failed", "s06_failed" or "6".
func (s *Statuses) Lookup(word string) (Code, error) {
	word = strings.TrimSpace(word)
	if c, ok := s.role[Role(word)]; ok {
		return c, nil
	}
	for c, n := range s.names {
		if n == word {
			return c, nil
		}
	}
	if v, err := strconv.Atoi(word); err == nil {
		return Code(v), nil
	}
	return 0, fmt.Errorf("unknown status %q: use a role (%s), a name (%s) or a number",
		word, strings.Join(roleWords(), ", "), strings.Join(s.nameList(), ", "))
}

// LookupList parses a comma-separated list of statuses with Lookup.
func (s *Statuses) LookupList(list string) ([]Code, error) {
	var out []Code
	for w := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(w) == "" {
			continue
		}
		c, err := s.Lookup(w)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func roleWords() []string {
	out := make([]string, len(Roles))
	for i, r := range Roles {
		out[i] = string(r)
	}
	return out
}

func (s *Statuses) nameList() []string {
	out := make([]string, 0, len(s.names))
	for _, c := range s.All() {
		out = append(out, s.names[c])
	}
	return out
}
