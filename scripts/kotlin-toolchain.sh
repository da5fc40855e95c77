#!/usr/bin/env bash
# Makes sure a JDK (17 or newer) and Maven are installed; installs Debian's when missing.
# Maven downloads the Kotlin compiler, JNA, coroutines and JUnit from Maven Central into ~/.m2.
set -euo pipefail
if ! command -v mvn >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's JDK and Maven"
    (
      flock 9
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven
    ) 9>/tmp/apt.lock >/dev/null
  fi
fi
command -v mvn >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 || {
  echo "a JDK (javac) and Maven (mvn) are needed and could not be installed" >&2
  exit 1
}
# Not `| head`: under pipefail a SIGPIPE in the writer would fail the script.
java_version=$(java -version 2>&1)
maven_version=$(mvn -v 2>/dev/null)
echo "${java_version%%$'\n'*}"
echo "${maven_version%%$'\n'*}"
