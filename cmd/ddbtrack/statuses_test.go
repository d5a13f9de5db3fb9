package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

func TestParseStatuses(t *testing.T) {
	t.Parallel()
	st, err := parseStatuses(defaultStatuses)
	require.NoError(t, err)
	cfg := st.config("table", "job")
	require.Equal(t, Code(6), cfg.Failed)
	require.Equal(t, Code(3), cfg.Running)
	require.Equal(t, "s06_failed", st.names[6])
	require.Empty(t, cfg.Startable)

	st, err = parseStatuses(" pending=1, running=2 ,failed:broken=3,succeeded=4,ignored=5,exported=20")
	require.NoError(t, err)
	require.Equal(t, "pending", st.names[1])
	require.Equal(t, "broken", st.names[3])
	require.Equal(t, []Code{20}, st.config("t", "j").Startable, "a status outside the roles is startable, so the tracker knows it")
	require.Equal(t, Code(4), st.role[ops.Succeeded])

	for spec, want := range map[string]string{
		"pending=0":               "no status has the running role",
		"pending=0,running=x":     `the value "x" is not an integer`,
		"pending=0,running=0":     "status value 0 is given twice",
		"pending:a=0,running:a=1": `status name "a" is given twice`,
		"pending:a=0,pending:b=1": "role pending is given twice",
		"waiting:a=0":             `"waiting" is not a role`,
		"pending":                 "has no value",
		"pending:=0":              "has an empty name",
		"pending=0,running=1,failed=2,ignored=3,": "no status has the succeeded role",
	} {
		_, err := parseStatuses(spec)
		require.ErrorContains(t, err, want, spec)
	}
}

func TestCodeString(t *testing.T) {
	// Not parallel: it changes the process-wide names.
	defaults, err := parseStatuses(defaultStatuses)
	require.NoError(t, err)
	t.Cleanup(defaults.register)
	defaults.register()
	require.Equal(t, "s03_in_progress", Code(3).String())
	require.Equal(t, "status(404)", Code(404).String())
	other, err := parseStatuses("pending=1,running=2,failed=3,succeeded=4,ignored=5")
	require.NoError(t, err)
	other.register()
	require.Equal(t, "failed", Code(3).String(), "later names win")
	require.Equal(t, "s00_todo", Code(0).String(), "earlier names stay")
}
