package main

import (
	"context"
	"fmt"
	"net/url"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/localaws"
)

// loadClient builds a DynamoDB client the way the AWS SDK and CLI do:
// credentials, region and endpoint come from the environment and the
// shared config files, and the flags override them.
func loadClient(ctx context.Context, c *common) (ddbtrack.Client, error) {
	opts := []func(*config.LoadOptions) error{
		// LoadDefaultConfig refuses any other HTTP client when
		// AWS_CA_BUNDLE is set.
		config.WithHTTPClient(awshttp.NewBuildableClient()),
	}
	if c.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.profile))
	}
	if c.region != "" {
		opts = append(opts, config.WithRegion(c.region))
	}
	endpoint := c.endpoint
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_DYNAMODB")
	}
	if isLoopback(endpoint) && c.profile == "" && !localaws.CredentialsInEnv() {
		opts = append(opts, config.WithCredentialsProvider(localaws.Credentials("ddbtrack-local")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration: %w; check --profile, AWS_PROFILE and ~/.aws/config", err)
	}
	if cfg.Region == "" {
		if !isLoopback(endpoint) {
			return nil, usagef("no AWS region: pass --region, or set AWS_REGION or a region in your profile")
		}
		cfg.Region = "us-east-1" // Local servers accept any region.
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if c.endpoint != "" {
			o.BaseEndpoint = aws.String(c.endpoint)
		}
	}), nil
}

// isLoopback reports whether endpoint is a URL on this machine.
func isLoopback(endpoint string) bool {
	u, err := url.Parse(endpoint)
	return err == nil && u.Host != "" && isLoopbackHost(u.Hostname())
}
