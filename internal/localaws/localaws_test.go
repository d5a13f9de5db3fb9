package localaws

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCredentialsInEnv(t *testing.T) {
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(name, "")
	}
	require.False(t, CredentialsInEnv())
	t.Setenv("AWS_PROFILE", "prod")
	require.True(t, CredentialsInEnv(), "a profile names real credentials")
}

func TestCredentials(t *testing.T) {
	creds, err := Credentials("test").Retrieve(context.Background())
	require.NoError(t, err)
	require.Equal(t, "local", creds.AccessKeyID)
	require.Equal(t, "test", creds.Source)
}
