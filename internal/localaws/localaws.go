// Package localaws lets the test helpers and the ddbtrack command talk to a
// DynamoDB-compatible server on this machine without AWS credentials.
//
// A local server accepts any credentials, but the SDK insists on having
// some. Left to search for them, it would end by asking the EC2 metadata
// service and waiting for that to time out on every first call.
package localaws

import (
	"context"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// CredentialsInEnv reports whether the environment points the SDK at
// credentials of its own, which should then be used even for a local
// server. It reads the process environment, as the SDK does.
func CredentialsInEnv() bool {
	for _, name := range []string{
		"AWS_ACCESS_KEY_ID",
		"AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI",
	} {
		if os.Getenv(name) != "" {
			return true
		}
	}
	return false
}

// Credentials returns a provider of the placeholder pair local/local,
// naming source as their origin in the SDK's logs.
func Credentials(source string) aws.CredentialsProvider {
	creds := aws.Credentials{AccessKeyID: "local", SecretAccessKey: "local", Source: source}
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil })
}
