// Package ddbtrackotel traces and measures ddbtrack attempts with OpenTelemetry.
package ddbtrackotel
