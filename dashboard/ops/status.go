package ops

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/ddbtrack/ddbtrack"
)

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

// Statuses describes a job's status enum as its tracker knows it: which
// value plays each role, the name of every value, and the statuses outside
// the roles that the tracker starts from (Config.Startable), such as a
// pipeline's earlier step.
type Statuses[S ddbtrack.Status] struct {
	role  map[Role]S
	names map[S]string
	roles map[S]Role
}

// StatusesOf reads a tracker's statuses from its configuration. Names come
// from the enum's String method, which is also what the library stores in
// status_name.
func StatusesOf[S ddbtrack.Status](cfg ddbtrack.Config[S]) *Statuses[S] {
	s := &Statuses[S]{role: map[Role]S{}, names: map[S]string{}, roles: map[S]Role{}}
	for r, c := range map[Role]S{
		Pending: cfg.Pending, Running: cfg.Running, Failed: cfg.Failed,
		Succeeded: cfg.Succeeded, Ignored: cfg.Ignored,
	} {
		s.role[r], s.roles[c], s.names[c] = c, r, nameOf(c)
	}
	for _, c := range cfg.Startable {
		s.names[c] = nameOf(c)
	}
	return s
}

// nameOf is the library's rule for a status's name: its String, or
// "status(N)" when String returns nothing.
func nameOf[S ddbtrack.Status](c S) string {
	if n := c.String(); n != "" {
		return n
	}
	return fmt.Sprintf("status(%d)", int(c))
}

// Of returns the status that plays a role.
func (s *Statuses[S]) Of(r Role) S { return s.role[r] }

// RoleOf returns the role a status plays, or "" for a status outside the
// roles.
func (s *Statuses[S]) RoleOf(c S) Role { return s.roles[c] }

// Name returns the status's name.
func (s *Statuses[S]) Name(c S) string {
	if n, ok := s.names[c]; ok {
		return n
	}
	return nameOf(c)
}

// All returns every status the tracker knows, by value.
func (s *Statuses[S]) All() []S {
	return slices.Sorted(maps.Keys(s.names))
}

// Lookup finds a status by role, name or value, as an operator types it:
// "failed", "s06_failed" or "6".
func (s *Statuses[S]) Lookup(word string) (S, error) {
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
		return S(v), nil
	}
	return 0, fmt.Errorf("unknown status %q: use a role (%s), a name (%s) or a number",
		word, strings.Join(roleWords(), ", "), strings.Join(s.nameList(), ", "))
}

// LookupList parses a comma-separated list of statuses with Lookup,
// dropping blanks and duplicates.
func (s *Statuses[S]) LookupList(list string) ([]S, error) {
	var out []S
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

func (s *Statuses[S]) nameList() []string {
	out := make([]string, 0, len(s.names))
	for _, c := range s.All() {
		out = append(out, s.names[c])
	}
	return out
}
