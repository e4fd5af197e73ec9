"""Login (password, then TOTP), logout, TOTP enrolment, lockout; both apps."""

# OWNER: helper auth

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
