/**
 * The command line ({@code bin/pa}): {@code demo}, {@code check}, {@code prefix} and {@code bench},
 * built on picocli. Bad flags and impossible shapes end with one line naming the value and exit code 2.
 */
package dev.pagedattn.cli;
