"""dp-accounting's own contract tests, unmodified, against dpplan's accountant (issue 23).

``PrivacyAccountantTest`` is imported from the installed dp-accounting and subclassed once per
method, exactly as dp-accounting's RDP and PLD accountants subclass it.
"""

from __future__ import annotations

from dp_accounting import privacy_accountant_test

import dpplan


class TestRDPContract(privacy_accountant_test.PrivacyAccountantTest):
    def _make_test_accountants(self):
        return [dpplan.dp_accounting_accountant("rdp")]


class TestPRVContract(privacy_accountant_test.PrivacyAccountantTest):
    def _make_test_accountants(self):
        return [dpplan.dp_accounting_accountant("prv")]


class TestPLDContract(privacy_accountant_test.PrivacyAccountantTest):
    def _make_test_accountants(self):
        return [dpplan.dp_accounting_accountant("pld")]


class TestBestContract(privacy_accountant_test.PrivacyAccountantTest):
    def _make_test_accountants(self):
        return [dpplan.dp_accounting_accountant("best")]
