/**
 * The JMH suite: cache-manager operations with checked mode off, the plain-JVM decode backend on
 * scaled-down standard shapes (Vector API and scalar), and the baselines they are read against
 * (an empty method and an all-core memory stream). {@link dev.pagedattn.bench.Summary} turns a
 * run's CSV into the tables of {@code benchmarks/NOTES.md}. See {@code benchmarks/README.md}.
 */
package dev.pagedattn.bench;
