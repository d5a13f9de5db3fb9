// Package ops is what the ddbtrack command and the dashboard share: a job
// as an operator sees it ([Job]), its statuses by role and name
// ([Statuses]), the filters that select tasks ([Filter]), failures grouped
// by cause ([Normalize], [Job.Errors]), requeues in batches
// ([Job.Requeue]), cancels ([Job.Cancel]), due times in words
// ([Statuses.Due]) and making a task due now ([Job.DueNow]), the times and
// cursors an operator types and pages with, and the text helpers that
// keep what comes from DynamoDB from reaching a terminal or a page as
// anything but visible text ([Visible], [Explain]).
//
// # Why it lives here
//
// The command (module github.com/ddbtrack/ddbtrack/cmd/ddbtrack) and the
// dashboard (module github.com/ddbtrack/ddbtrack/dashboard) both need this
// code, and they are separate modules, versioned apart:
//   - In the library's module it would be either public, which would grow
//     the library's API with an operator's concerns, or internal, which Go
//     lets the other modules import but which they would then depend on
//     without any promise: a user who upgrades the library and not the
//     dashboard would get a build that no longer compiles.
//   - In the command's module the dashboard could not import it without
//     depending on the command.
//   - Here, the command already depends on this module for `ddbtrack
//     serve`, so sharing it adds no dependency, and the dashboard and the
//     code it shares with the command always come at the same version.
//
// The price is that the package is public. Its surface is kept to what the
// two callers use; it follows the dashboard module's version, and is not
// meant for other programs.
//
// # One place for the library's API
//
// The command and the dashboard reach the library through [Job] and the
// few helpers here, so that a change in the library's API (counting,
// option errors, due times) is adapted in this package, not in every page
// and command.
package ops
