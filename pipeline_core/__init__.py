"""The pipeline's logic: plain functions over data. No Prefect, no MLflow, no store I/O.

This package ships inside every logged model, so importing it must not change the host process.
"""
