package ddblocal

import "context"

// Internals for the black-box tests in ddblocal_test.

var (
	InstallDynalite = installDynalite
	CacheDir        = cacheDir
	WriteGuard      = writeGuard
	NPMFiles        = npmFiles
	MotoLauncher    = motoLauncher
)

// ConnectKind connects as Connect does and reports which server runs.
func ConnectKind(ctx context.Context) (Kind, func(), error) {
	c, err := connect(ctx)
	if err != nil {
		return "", nil, err
	}
	return c.Kind, c.stop, nil
}
