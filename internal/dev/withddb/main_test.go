package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLocalEnv(t *testing.T) {
	t.Parallel()
	const endpoint = "http://127.0.0.1:8000"
	for _, tc := range []struct {
		name      string
		env       []string
		haveCreds bool
		want      []string
	}{
		{
			name: "bare environment",
			env:  []string{"HOME=/root"},
			want: []string{"HOME=/root", "AWS_ENDPOINT_URL_DYNAMODB=" + endpoint,
				"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_REGION=us-east-1"},
		},
		{
			name:      "own credentials and region are kept",
			env:       []string{"AWS_PROFILE=dev", "AWS_DEFAULT_REGION=eu-west-1"},
			haveCreds: true,
			want:      []string{"AWS_PROFILE=dev", "AWS_DEFAULT_REGION=eu-west-1", "AWS_ENDPOINT_URL_DYNAMODB=" + endpoint},
		},
		{
			name: "an empty region is no region",
			env:  []string{"AWS_REGION="},
			want: []string{"AWS_REGION=", "AWS_ENDPOINT_URL_DYNAMODB=" + endpoint,
				"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_REGION=us-east-1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, localEnv(tc.env, endpoint, tc.haveCreds))
		})
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for endpoint, want := range map[string]bool{
		"http://127.0.0.1:8000":                    true,
		"http://localhost:8000":                    true,
		"http://[::1]:8000":                        true,
		"https://dynamodb.us-east-1.amazonaws.com": false,
		"http://10.0.0.5:8000":                     false,
		"":                                         false,
	} {
		require.Equal(t, want, isLoopback(endpoint), endpoint)
	}
}
