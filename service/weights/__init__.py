"""Weights: conversion of the released PandaGPT pieces, demo weights, downloads."""
