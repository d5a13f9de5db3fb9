// Preloaded into dynalite by ddblocal (node --require).
//
// dynalite 4.0.0 rethrows a request's socket error (index.js:
// req.on('error', function (err) { throw err })), so a client that aborts a
// request mid-flight kills the whole server. Clients do that routinely: a
// cancelled context cuts a request short. An aborted request concerns only
// its own connection, so those errors are dropped; anything else still ends
// the process, as it would have.
process.on('uncaughtException', function (err) {
  if (err && (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.message === 'aborted')) {
    return
  }
  console.error((err && err.stack) || err)
  process.exit(1)
})
