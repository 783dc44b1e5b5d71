# SPEC-018 §2.3, verbatim
# Added where the spec's scenario has no Given: "Given an established session
# between Alice and Bob" in "Network partition detection".
Feature: Degradation and Recovery

  Scenario: Network partition detection
    Given an established session between Alice and Bob
    When connectivity lost for >30s
    Then state becomes "degraded"
    And messages are queued
    And session is preserved

  Scenario: Partition recovery
    Given session is "degraded"
    When connectivity restored
    Then re-establishment is attempted
    And queued messages are flushed

  Scenario: Transport fallback
    Given session over QUIC
    When QUIC fails
    Then re-establishment over μTCP is attempted
    And this is transparent to upper layers
