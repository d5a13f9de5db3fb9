// Preloaded into dynalite by ddblocal (node --require). It keeps the server
// alive when a client aborts a request, and ends it when ddblocal's process
// ends.
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

// ddblocal holds the write end of this process's standard input for as long
// as it wants the server, and the OS closes it when ddblocal's process dies,
// however it dies. Exiting when the input ends keeps a test binary that
// crashed, or never stopped its shared server, from leaving one behind, also
// where the OS has no parent-death signal.
process.stdin.on('end', function () { process.exit(0) })
process.stdin.on('error', function () { process.exit(0) })
process.stdin.resume()
