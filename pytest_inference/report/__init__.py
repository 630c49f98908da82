"""Report sinks: every claim reaches the terminal, JUnit, summary.json and Allure."""
