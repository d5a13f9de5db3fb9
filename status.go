package ddbtrack

import "fmt"

// Status is the constraint for a job's own enum of task statuses. The
// integer is what DynamoDB stores and indexes; String gives the name that
// logs, records and operators see. ddbtrack only requires the five roles in
// [Config] to have distinct values; ordering the enum so that a bigger
// number means closer to done makes records easy to read.
//
// A typical declaration:
//
//	type Step int
//
//	const (
//		Todo Step = iota
//		Doing
//		Failed
//		Done
//		Ignored
//	)
//
//	func (s Step) String() string { ... }
type Status interface {
	~int
	String() string
}

// checkRoles reports two roles of cfg that share a value.
func checkRoles[S Status](cfg *Config[S]) error {
	named := []struct {
		field string
		value S
	}{
		{"Pending", cfg.Pending}, {"Running", cfg.Running}, {"Failed", cfg.Failed},
		{"Succeeded", cfg.Succeeded}, {"Ignored", cfg.Ignored},
	}
	seen := make(map[S]string, len(named))
	for _, n := range named {
		if other, dup := seen[n.value]; dup {
			return optionError("Config."+n.field, fmt.Sprintf("has the same value (%d, %q) as Config.%s", int(n.value), n.value.String(), other),
				"give each of Pending, Running, Failed, Succeeded and Ignored its own status value")
		}
		seen[n.value] = n.field
	}
	return nil
}
